"""``ablate flips A B``: the items whose correctness differs between two evaluations (under the
mask and without it, before and after a finetune), with the choices each one picked and their
log-likelihoods, and the counts per task.

An item is (task, doc_id), right or wrong by its task's headline metric; the choice it picked is
that metric's prediction column (``acc_norm`` -> ``predicted_norm``). Items pair by doc_id, so
both evaluations must have scored the same docs (:func:`same_data_error`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from ablate.core.config import whole_number
from ablate.mask import items

METRICS_FILE, SAMPLES_FILE = "metrics.json", "samples.parquet"
#: per task: items right in A only (lost in B), in B only (gained), in both, in neither
_COUNT_COLUMNS = ["task", "n", "lost", "gained", "both_right", "both_wrong", "net"]


class FlipsError(ValueError):
    pass


def _load_eval(path: str | Path) -> tuple[dict, pd.DataFrame, Path]:
    """(metrics, samples, folder) of one evaluation folder or its metrics.json."""
    path = Path(path)
    folder = path.parent if path.name == METRICS_FILE else path
    metrics_file = folder / METRICS_FILE
    if not metrics_file.exists():
        raise FlipsError(
            f"{metrics_file} does not exist: give an evaluation folder or its metrics.json"
        )
    return json.loads(metrics_file.read_text()), items.load(folder / SAMPLES_FILE), folder


def _picks(metrics: dict, samples: pd.DataFrame) -> pd.DataFrame:
    """Per item: the gold choice's text and the headline metric's pick, its text and ll."""
    rows = []
    for task, result in metrics["tasks"].items():
        docs = samples[samples["task"] == task]
        col = "predicted" + result["headline_metric"].removeprefix("acc")
        if col not in docs:
            raise FlipsError(
                f"samples of {task!r} lack {col!r}, the prediction of its headline metric"
            )
        for doc_id, doc in docs.groupby("doc_id", sort=True):
            by_choice = doc.set_index("choice")
            pick, gold = int(doc[col].iloc[0]), int(doc["gold"].iloc[0])
            rows.append(
                {
                    "task": task,
                    "doc_id": doc_id,
                    "gold_text": by_choice["choice_text"].get(gold, ""),
                    "pick": pick,
                    "pick_text": by_choice["choice_text"][pick],
                    "pick_ll": float(by_choice["loglikelihood"][pick]),
                }
            )
    return pd.DataFrame(rows).set_index(list(items.ITEM_ID))


def same_data_error(fa: Path, ma: dict, fb: Path, mb: dict, task: str) -> str | None:
    """One line when evaluations ``a`` and ``b`` did not score the same docs of ``task`` (their
    docs' ``fingerprint`` differs, or one records none), else None: a doc_id of other data is
    another question."""
    ra, rb = ma["tasks"][task], mb["tasks"][task]
    for folder, r in ((fa, ra), (fb, rb)):
        if not r.get("fingerprint"):
            return (
                f"{folder / METRICS_FILE} records no fingerprint of the docs of task {task} (an "
                "evaluation made before ablate eval recorded one): rerun that evaluation"
            )
    if ra["fingerprint"] == rb["fingerprint"]:
        return None
    return (
        f"{fa / METRICS_FILE} and {fb / METRICS_FILE} scored different data for task {task} "
        f"({ra.get('n', '?')} and {rb.get('n', '?')} docs, fingerprints "
        f"{ra['fingerprint'][:12]} and {rb['fingerprint'][:12]}): their doc_ids name other "
        "questions; compare evaluations of the same data (file, revision, limit), or leave the "
        "task out with --task"
    )


def compare(
    a: str | Path, b: str | Path, tasks: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The flipped items and the counts per task of evaluations ``a`` and ``b``."""
    ma, sa, fa = _load_eval(a)
    mb, sb, fb = _load_eval(b)
    common = sorted(set(ma["tasks"]) & set(mb["tasks"]) & set(tasks or ma["tasks"]))
    if not common:
        raise FlipsError(f"{fa} and {fb} scored no task in common")
    for task in common:
        if msg := same_data_error(fa, ma, fb, mb, task):
            raise FlipsError(msg)
    ma = {**ma, "tasks": {t: ma["tasks"][t] for t in common}}
    mb = {**mb, "tasks": {t: mb["tasks"][t] for t in common}}
    right = pd.DataFrame(
        {
            "a_right": items.correctness(ma, sa, str(fa)),
            "b_right": items.correctness(mb, sb, str(fb)),
        }
    ).dropna()
    both = right.join(_picks(ma, sa).add_prefix("a_")).join(_picks(mb, sb).add_prefix("b_"))
    both = both.drop(columns="b_gold_text").rename(columns={"a_gold_text": "gold_text"})
    counts = []
    for task, t in right.groupby(level="task"):
        a_right, b_right = t.a_right == 1, t.b_right == 1  # correctness is 0/1
        lost, gained = int((a_right & ~b_right).sum()), int((~a_right & b_right).sum())
        both_right = int((a_right & b_right).sum())
        both_wrong = len(t) - lost - gained - both_right
        counts.append([task, len(t), lost, gained, both_right, both_wrong, gained - lost])
    flipped = both[both.a_right != both.b_right].reset_index()
    return flipped, pd.DataFrame(counts, columns=_COUNT_COLUMNS)


def _report_lines(flipped: pd.DataFrame, counts: pd.DataFrame, limit: int) -> list[str]:
    lines = [counts.to_string(index=False), ""]
    for _, r in flipped.head(limit).iterrows():
        way = "lost" if r.a_right else "gained"
        lines.append(
            f"{r.task} {r.doc_id} ({way}): gold {r.gold_text!r}; "
            f"A picked {r.a_pick_text!r} (ll {r.a_pick_ll:.3f}), "
            f"B picked {r.b_pick_text!r} (ll {r.b_pick_ll:.3f})"
        )
    if len(flipped) > limit:
        lines.append(f"... {len(flipped) - limit} more (--limit, or --csv for all)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ablate flips", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "a", help="evaluation folder (or its metrics.json): A, e.g. results/eval/base/causal"
    )
    ap.add_argument(
        "b", help="evaluation folder (or its metrics.json): B, e.g. results/eval/base/prefill_bidir"
    )
    ap.add_argument("--task", action="append", help="only this task (repeatable)")
    ap.add_argument(
        "--limit",
        type=whole_number(0),
        default=20,
        help="flipped items listed (default 20; 0: the counts alone)",
    )
    ap.add_argument("--csv", help="write every flipped item here")
    args = ap.parse_args(argv)
    try:
        flipped, counts = compare(args.a, args.b, args.task)
    except (FlipsError, items.ItemsError) as exc:
        ap.exit(2, f"ablate flips: {exc}\n")
    print("\n".join(_report_lines(flipped, counts, args.limit)))
    if args.csv:
        flipped.to_csv(args.csv, index=False)
    return 0
