"""An evaluation's results from lm-eval's output: per task its metrics, headline score, chance
and docs' fingerprint, and one sample row per (doc, choice), enough to recompute any metric.

Besides lm-eval's ``acc`` and ``acc_norm`` (log-likelihood per character of the choice) a task
gets ``acc_tokens``: the argmax of log-likelihood per token of the continuation, the original
study's ``--length-normalize`` (``eval_mcq.py``), computed here from the sample rows."""

from __future__ import annotations

import hashlib
from typing import Any

from ablate.mask.lm_tasks import gold_index

METRICS = ("acc", "acc_norm", "acc_tokens")
_DEFAULT_HEADLINE = "acc_norm"  # lm-eval's length-normalised score, where the task has it
SAMPLE_COLUMNS = (
    "task",
    "doc_id",
    "choice",
    "choice_text",
    "loglikelihood",
    "is_greedy",
    "length",
    "tokens",
    "predicted",
    "predicted_norm",
    "predicted_tokens",
    "gold",
    "acc",
    "acc_norm",
    "acc_tokens",
)


def _sample_rows(
    task_name: str, task, samples: list[dict], continuation_tokens: dict[tuple[str, str], int]
) -> list[dict[str, Any]]:
    """One row per (doc, choice): what lm-eval scored, enough to recompute any metric."""
    import numpy as np

    rows = []
    for s in samples:
        doc = s["doc"]
        choices = [str(c) for c in task.doc_to_choice(doc)]
        resps = s["filtered_resps"][: len(choices)]
        lls = np.array([float(r[0]) for r in resps])
        lengths = np.array([float(len(c)) for c in choices])  # lm-eval's acc_norm divisor
        tokens = np.array(
            [continuation_tokens[tuple(a)] for a in s["arguments"][: len(choices)]]
        )  # acc_tokens' divisor
        pred, pred_norm = int(lls.argmax()), int((lls / lengths).argmax())
        pred_tokens = int((lls / tokens).argmax())
        gold = gold_index(task, doc, choices)
        for i, (choice, (ll, greedy)) in enumerate(zip(choices, resps)):
            rows.append(
                {
                    "task": task_name,
                    "doc_id": int(s["doc_id"]),
                    "choice": i,
                    "choice_text": choice,
                    "loglikelihood": float(ll),
                    "is_greedy": bool(greedy),
                    "length": int(lengths[i]),
                    "tokens": int(tokens[i]),
                    "predicted": pred,
                    "predicted_norm": pred_norm,
                    "predicted_tokens": pred_tokens,
                    "gold": gold,
                    "acc": float(s.get("acc", float("nan"))),
                    "acc_norm": float(s.get("acc_norm", float("nan"))),
                    # several gold answers (gold -1): lm-eval's rule is not redone here
                    "acc_tokens": float(pred_tokens == gold) if gold >= 0 else float("nan"),
                }
            )
    return rows


def _task_fingerprint(samples: list[dict]) -> str:
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        h.update(f"{s['doc_id']}:{s['doc_hash']}\n".encode())
    return h.hexdigest()


def _metric(res: dict, name: str) -> tuple[float | None, float | None]:
    """lm-eval's value of ``name`` and its standard error; None where it has none ("N/A")."""
    values = (res.get(f"{name},none"), res.get(f"{name}_stderr,none"))
    return tuple(None if x is None or x == "N/A" else float(x) for x in values)


def _acc_tokens(rows: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """acc_tokens and lm-eval's standard error of it; None where a doc has several gold answers."""
    from lm_eval.api.metrics import mean, mean_stderr

    per_doc = {r["doc_id"]: r["acc_tokens"] for r in rows}
    values = list(per_doc.values())
    if not values or any(v != v for v in values):  # NaN: a multi-target doc
        return None, None
    return float(mean(values)), float(mean_stderr(values)) if len(values) > 1 else None


def task_result(
    name: str,
    task,
    results: dict,
    samples: list[dict],
    headline: str | dict[str, str] | None,
    continuation_tokens: dict[tuple[str, str], int],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One task's metrics.json entry and its sample rows. ``headline``: the metric reported as
    ``score`` (one name, or task -> name; None: acc_norm where the task has it, else acc)."""
    import pandas as pd

    rows = _sample_rows(name, task, samples, continuation_tokens)
    entry: dict[str, Any] = {}
    for m in METRICS:
        entry[m], entry[f"{m}_stderr"] = (
            _acc_tokens(rows) if m == "acc_tokens" else _metric(results, m)
        )
    want = headline.get(name) if isinstance(headline, dict) else headline
    metric = want or (_DEFAULT_HEADLINE if entry[_DEFAULT_HEADLINE] is not None else "acc")
    if entry.get(metric) is None:
        raise KeyError(
            f"task {name}: headline metric {metric!r} was not computed "
            f"(available: {', '.join(m for m in METRICS if entry[m] is not None)})"
        )
    n_choices = pd.Series([r["doc_id"] for r in rows]).value_counts()
    result = {
        "headline_metric": metric,
        "score": entry[metric],
        **entry,
        "n": len(samples),
        "chance": float((1.0 / n_choices).mean()),
        "fingerprint": _task_fingerprint(samples),
    }
    return result, rows


def macro(per_task: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The macro over tasks: mean score, mean chance, the number of tasks."""
    scores = [v["score"] for v in per_task.values()]
    chances = [v["chance"] for v in per_task.values()]
    return {
        "score": sum(scores) / len(scores),
        "chance": sum(chances) / len(chances),
        "n_tasks": len(scores),
    }
