"""Zero-shot multiple-choice evaluation under a mask policy, through lm-evaluation-harness.

Stages 1, 2 and 4 are this one job: score lm-eval tasks (real ones by name, or the embedded
ones from local YAMLs) with a model running under ``causal``, ``prefill_bidir`` or
``prefix_bidir``, and write ``metrics.json`` + ``samples.parquet`` (docs/evaluation.md).

:class:`MaskPolicyLM` is lm-eval's HF model with one change: ``_loglikelihood_tokens`` goes
through :func:`ablate.mask.scoring.score_requests`, which knows every request's
context/continuation boundary, builds the padding mask and position ids itself (stock lm-eval
right-pads with token 0 and passes no mask) and applies the policy. Under ``causal`` it returns
what stock lm-eval returns on the same model (tests/test_evaluation.py).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from ablate.core import io, provenance
from ablate.core.modeling import load_causal_lm, load_tokenizer
from ablate.core.phases import Phases
from ablate.mask import study
from ablate.mask.masks import POLICIES, check_policy
from ablate.mask.scoring import score_requests

METRICS = ("acc", "acc_norm")
DEFAULT_HEADLINE = "acc_norm"  # the seed scored length-normalised log-likelihood
SAMPLE_COLUMNS = (
    "task",
    "doc_id",
    "choice",
    "choice_text",
    "loglikelihood",
    "is_greedy",
    "length",
    "predicted",
    "predicted_norm",
    "gold",
    "acc",
    "acc_norm",
)


class TaskNotFoundError(ValueError):
    pass


class TaskFileError(ValueError):
    """A local task's YAML or data file is malformed; the message names the file (and row)."""


@register_model("maskpolicy-hf")
class MaskPolicyLM(HFLM):
    """HFLM whose log-likelihoods are computed under ``mask_policy`` by the fast scorer.

    ``pretrained`` is a model object or a path / hub id, loaded through
    :func:`ablate.core.modeling.load_causal_lm` (which handles the Mistral3 VLM checkpoint).
    ``max_batch_tokens`` bounds a scoring batch (padded tokens); ``share_contexts`` encodes a
    context shared by several choices once (causal and prefix_bidir only).
    """

    def __init__(
        self,
        pretrained,
        mask_policy: str = "causal",
        *,
        tokenizer=None,
        revision: str | None = None,
        dtype: str | torch.dtype = "float32",
        device: str | None = None,
        attn_implementation: str = "sdpa",
        max_batch_tokens: int = 16384,
        share_contexts: bool = True,
        **kwargs: Any,
    ):
        self.mask_policy = check_policy(mask_policy)
        self.scoring_s = 0.0  # seconds inside the scorer (the rest of an evaluation is set-up)
        self.max_batch_tokens = int(max_batch_tokens)
        self.share_contexts = share_contexts not in (False, "False", "false", "0", 0)
        if isinstance(pretrained, (str, os.PathLike)):
            source = pretrained
            if device is None:
                device = "cuda" if torch.cuda.is_available() else "cpu"
            load = lambda: load_causal_lm(  # noqa: E731
                source,
                revision=revision,
                dtype=dtype,
                attn_implementation=attn_implementation,
                device=device,
            )
            # A local dir: tokenizer first, so a dir without one fails before the slow load.
            # Anything else: the model loader says best what is wrong with the path or id.
            pretrained = None if os.path.isdir(source) else load()
            if tokenizer is None:
                tokenizer = load_tokenizer(source, revision=revision)
            pretrained = pretrained or load()
        elif tokenizer is None:
            raise ValueError("MaskPolicyLM needs a tokenizer when given a model object")
        kwargs.pop("batch_size", None)  # batches are bounded by max_batch_tokens instead
        kwargs.pop("max_batch_size", None)
        super().__init__(pretrained=pretrained, tokenizer=tokenizer, **kwargs)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        t0 = time.perf_counter()
        scores = score_requests(
            self.model,
            [(ctx, cont) for _, ctx, cont in requests],
            self.mask_policy,
            max_length=self.max_length,
            max_batch_tokens=self.max_batch_tokens,
            share_contexts=self.share_contexts,
            progress=not disable_tqdm and self.rank == 0,
            desc=f"loglikelihood [{self.mask_policy}]",
        )
        self.scoring_s += time.perf_counter() - t0
        for (key, _, _), answer in zip(requests, scores):
            if key is not None:  # rolling-loglikelihood pieces have no cache key
                self.cache_hook.add_partial("loglikelihood", key, answer)
        return scores


# --- tasks --------------------------------------------------------------------------------------


def _resolve_data_files(files, base: Path, yaml_path: Path):
    if isinstance(files, dict):
        return {k: _resolve_data_files(v, base, yaml_path) for k, v in files.items()}
    if isinstance(files, (list, tuple)):
        return [_resolve_data_files(v, base, yaml_path) for v in files]
    path = Path(os.path.expanduser(str(files)))
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise FileNotFoundError(f"task {yaml_path}: data file {path} does not exist")
    return str(path.resolve())


def local_task_configs(task_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Task name -> lm-eval config for every ``*.yaml`` in ``task_dir``.

    Relative ``dataset_kwargs.data_files`` are resolved against the YAML's folder, so the task
    folder can move and the job can run from any working directory.
    """
    import yaml

    d = Path(task_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"task folder {d} does not exist")
    configs = {}
    for path in sorted(d.glob("*.yaml")):
        try:
            cfg = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:  # its own message names "<unicode string>", not the file
            raise TaskFileError(f"task config {path} is not valid YAML: {exc}") from exc
        if not isinstance(cfg, dict) or "task" not in cfg:
            raise TaskFileError(f"{path} is not an lm-eval task config (no 'task' key)")
        files = (cfg.get("dataset_kwargs") or {}).get("data_files")
        if files is not None:
            cfg["dataset_kwargs"]["data_files"] = _resolve_data_files(files, path.parent, path)
        configs[cfg["task"]] = cfg
    return configs


def load_tasks(tasks: list[str], task_dirs=()) -> tuple[dict[str, Any], dict[str, dict], Any]:
    """lm-eval Task objects by name (local configs first), the local configs used, and the
    TaskManager (hand it to ``simple_evaluate``, which otherwise builds the full index again).

    Raises :class:`TaskNotFoundError` naming unknown tasks (with close matches).
    """
    from lm_eval.tasks import TaskManager

    local: dict[str, dict] = {}
    for d in task_dirs:
        local.update(local_task_configs(d))
    remote = [t for t in tasks if t not in local]
    tm = TaskManager(include_defaults=bool(remote))  # skip the 5 s scan when all are local
    unknown = [t for t in remote if t not in tm.all_tasks]
    if unknown:
        known = list(local) + tm.all_tasks
        hints = {t: difflib.get_close_matches(t, known, n=3) for t in unknown}
        raise TaskNotFoundError(
            "unknown task(s): "
            + "; ".join(
                f"{t!r}" + (f" (did you mean {', '.join(h)}?)" if h else "")
                for t, h in hints.items()
            )
            + (f". Local tasks: {', '.join(sorted(local))}" if local else "")
        )
    try:
        loaded = tm.load([local[t] if t in local else t for t in tasks])
    except (
        Exception
    ) as exc:  # datasets hides the file and row in __cause__ (DatasetGenerationError)
        files = [f for t in tasks if t in local for f in _data_file_list(local[t])]
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise TaskFileError(
            f"cannot load task(s) {', '.join(tasks)}: {type(exc).__name__}: {exc}{cause}"
            + (f"; local data files: {', '.join(files)}" if files else "")
        ) from exc
    used_local = {t: local[t] for t in tasks if t in local}
    for t in used_local:  # a doc without a valid gold answer would be scored silently wrong
        _check_local_docs(t, loaded["tasks"][t], used_local[t])
    return loaded["tasks"], used_local, tm


def _check_local_docs(name: str, task, cfg: dict) -> None:
    for i, doc in enumerate(task.eval_docs):
        try:
            choices = task.doc_to_choice(doc)
            if isinstance(task.doc_to_target(doc), list):
                continue  # several gold answers: lm-eval checks those itself
            gold = _gold_index(task, doc, choices)
        except Exception as exc:
            gold, choices = exc, []
        if isinstance(gold, Exception) or not 0 <= gold < len(choices):
            raise TaskFileError(
                f"task {name} ({', '.join(_data_file_list(cfg))}): doc {i} has no valid gold answer "
                f"among its choices ({gold!r}); doc keys: {', '.join(sorted(doc))}"
            )


# --- results ------------------------------------------------------------------------------------


def _gold_index(task, doc, choices: list[str]) -> int:
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    if isinstance(gold, str):
        return choices.index(gold) if gold in choices else -1
    if isinstance(gold, int):
        return gold
    return -1  # several gold answers: the per-doc acc columns stay exact


def sample_rows(task_name: str, task, samples: list[dict]) -> list[dict[str, Any]]:
    """One row per (doc, choice): what lm-eval scored, enough to recompute any metric."""
    import numpy as np

    rows = []
    for s in samples:
        doc = s["doc"]
        choices = [str(c) for c in task.doc_to_choice(doc)]
        resps = s["filtered_resps"][: len(choices)]
        lls = np.array([float(r[0]) for r in resps])
        lengths = np.array([float(len(c)) for c in choices])  # lm-eval's acc_norm divisor
        pred, pred_norm = int(lls.argmax()), int((lls / lengths).argmax())
        gold = _gold_index(task, doc, choices)
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
                    "predicted": pred,
                    "predicted_norm": pred_norm,
                    "gold": gold,
                    "acc": float(s.get("acc", float("nan"))),
                    "acc_norm": float(s.get("acc_norm", float("nan"))),
                }
            )
    return rows


def _task_fingerprint(samples: list[dict]) -> str:
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        h.update(f"{s['doc_id']}:{s['doc_hash']}\n".encode())
    return h.hexdigest()


def _metric(res: dict, name: str) -> tuple[float | None, float | None]:
    value = res.get(f"{name},none")
    stderr = res.get(f"{name}_stderr,none")
    as_float = lambda x: None if x is None or x == "N/A" else float(x)  # noqa: E731
    return as_float(value), as_float(stderr)


def evaluate(
    model: str | os.PathLike,
    tasks: list[str],
    policy: str,
    out_dir: str | os.PathLike,
    *,
    task_dirs=(),
    limit: int | dict[str, int] | None = None,
    headline: str | dict[str, str] | None = None,
    model_id: str | None = None,
    revision: str | None = None,
    dtype: str = "float32",
    device: str | None = None,
    max_batch_tokens: int = 16384,
    share_contexts: bool = True,
    config_slice: Any = None,
    bootstrap_iters: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``tasks`` under ``policy``; write metrics.json and samples.parquet.

    ``limit``: docs per task (an int for all tasks, or task -> int); the first docs are used.
    ``headline``: the metric reported as each task's ``score`` (one name, or task -> name);
    default acc_norm where the task has it, else acc. Returns the metrics.json content.
    """
    import pandas as pd

    phases = Phases()
    check_policy(policy)
    if not tasks:
        raise ValueError("no tasks to evaluate")
    out = Path(out_dir)
    print(
        f"[eval] tasks {', '.join(tasks)} under {policy} ({study.POLICY_DESCRIPTIONS[policy]})",
        flush=True,
    )
    with phases("load_tasks"):
        task_objs, local, task_manager = load_tasks(list(tasks), task_dirs)
    limits = limit if isinstance(limit, dict) else {t: limit for t in tasks}
    bad = set(limits) - set(tasks)
    if bad:
        raise TaskNotFoundError(f"limit given for task(s) not evaluated: {', '.join(sorted(bad))}")
    samples_idx = {
        t: list(
            range(
                len(task_objs[t].eval_docs)
                if limits.get(t) is None
                else min(int(limits[t]), len(task_objs[t].eval_docs))
            )
        )
        for t in tasks
    }
    print(f"[eval] loading model {model}", flush=True)
    with phases("load_model"):  # the manifest's hashes checked while the weights load
        lm = MaskPolicyLM(
            model,
            mask_policy=policy,
            revision=revision,
            dtype=dtype,
            device=device,
            max_batch_tokens=max_batch_tokens,
            share_contexts=share_contexts,
        )
    from lm_eval import simple_evaluate

    with phases("evaluate"):  # lm-eval: requests built, scored (evaluate.score), aggregated
        res = simple_evaluate(
            model=lm,
            tasks=[task_objs[t] for t in tasks],
            task_manager=task_manager,
            samples=samples_idx,
            log_samples=True,
            bootstrap_iters=bootstrap_iters,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    phases.add("evaluate.score", lm.scoring_s)

    per_task: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for t in tasks:
        r = res["results"][t]
        entry: dict[str, Any] = {}
        for m in METRICS:
            entry[m], entry[f"{m}_stderr"] = _metric(r, m)
        want = headline.get(t) if isinstance(headline, dict) else headline
        metric = want or (DEFAULT_HEADLINE if entry[DEFAULT_HEADLINE] is not None else "acc")
        if entry.get(metric) is None:
            raise KeyError(
                f"task {t}: headline metric {metric!r} was not computed "
                f"(available: {', '.join(m for m in METRICS if entry[m] is not None)})"
            )
        task_samples = res["samples"][t]
        task_rows = sample_rows(t, task_objs[t], task_samples)
        n_choices = pd.Series([r_["doc_id"] for r_ in task_rows]).value_counts()
        per_task[t] = {
            "headline_metric": metric,
            "score": entry[metric],
            **entry,
            "n": len(task_samples),
            "chance": float((1.0 / n_choices).mean()),
            "fingerprint": _task_fingerprint(task_samples),
        }
        rows.extend(task_rows)
        print(
            f"[eval] {t}: {metric}={entry[metric]:.4f} (chance {per_task[t]['chance']:.3f}, "
            f"n={len(task_samples)})",
            flush=True,
        )

    scores = [v["score"] for v in per_task.values()]
    chances = [v["chance"] for v in per_task.values()]
    local_path = Path(model)
    model_block = {
        "path": str(local_path.resolve()) if local_path.exists() else None,
        "id": model_id or str(model),
        "revision": revision,
    }
    inputs = {f"task:{t}": f for t, cfg in local.items() for f in _data_file_list(cfg)}
    manifest = local_path / "checkpoint_manifest.json"
    if manifest.exists():
        inputs["model_manifest"] = manifest
    elif (local_path / "config.json").exists():
        inputs["model_config"] = local_path / "config.json"
    run_config = (
        config_slice
        if config_slice is not None
        else {
            "policy": policy,
            "tasks": list(tasks),
            "limit": limits,
            "headline": headline,
            "model": model_block,
            "dtype": dtype,
        }
    )
    metrics = {
        "policy": policy,
        "model": model_block,
        "tasks": per_task,
        "macro": {
            "score": sum(scores) / len(scores),
            "chance": sum(chances) / len(chances),
            "n_tasks": len(scores),
        },
        "provenance": provenance.collect(
            config_slice=run_config,
            inputs=inputs,
            started=phases.started,
            extra={
                "task_fingerprints": {t: v["fingerprint"] for t, v in per_task.items()},
                "scorer": {
                    "max_batch_tokens": max_batch_tokens,
                    "share_contexts": share_contexts,
                    "dtype": dtype,
                    "device": str(lm.device),
                },
            },
        ),
    }
    metrics["run_id"] = metrics["provenance"]["run_id"]
    metrics["phases"] = phases.as_dict()
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    io.write_frame(out / "samples.parquet", frame)
    io.write_json(out / "metrics.json", metrics)
    print(
        f"[eval] macro {metrics['macro']['score']:.4f} (chance {metrics['macro']['chance']:.3f}) "
        f"-> {out / 'metrics.json'} in {time.time() - phases.started:.1f}s",
        flush=True,
    )
    return metrics


def _data_file_list(cfg: dict) -> list[str]:
    files = (cfg.get("dataset_kwargs") or {}).get("data_files") or []
    if isinstance(files, dict):
        files = list(files.values())
    flat: list[str] = []
    for f in files if isinstance(files, list) else [files]:
        flat.extend(f if isinstance(f, list) else [f])
    return flat


def _parse_pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--{what} expects TASK=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ablate eval",
        description="Score lm-eval multiple-choice tasks under a mask policy; "
        "write metrics.json and samples.parquet.",
    )
    ap.add_argument("--model", required=True, help="model dir or hub id")
    ap.add_argument("--tasks", required=True, help="comma-separated lm-eval task names")
    ap.add_argument("--policy", required=True, choices=POLICIES, help=study.policy_help())
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--task-dir", action="append", default=[], help="folder of local task YAMLs")
    ap.add_argument("--limit", type=int, default=None, help="docs per task")
    ap.add_argument("--headline", action="append", default=[], metavar="TASK=METRIC")
    ap.add_argument("--model-id", default=None, help="label recorded as model.id")
    ap.add_argument("--revision", default=None)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default=None)
    ap.add_argument("--max-batch-tokens", type=int, default=16384)
    ap.add_argument("--no-share-contexts", action="store_true")
    a = ap.parse_args(argv)
    evaluate(
        a.model,
        [t.strip() for t in a.tasks.split(",") if t.strip()],
        a.policy,
        a.out,
        task_dirs=a.task_dir,
        limit=a.limit,
        headline=_parse_pairs(a.headline, "headline") or None,
        model_id=a.model_id,
        revision=a.revision,
        dtype=a.dtype,
        device=a.device,
        max_batch_tokens=a.max_batch_tokens,
        share_contexts=not a.no_share_contexts,
    )
    return 0
