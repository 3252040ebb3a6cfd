"""Zero-shot multiple-choice evaluation under a mask policy, through lm-evaluation-harness.

Stages 1, 2 and 4 are this one job: score lm-eval tasks (real ones by name, or the embedded
ones from local YAMLs) with a model running under ``causal``, ``prefill_bidir`` or
``prefix_bidir``, and write ``metrics.json`` + ``samples.parquet`` (docs/evaluation.md).

The pieces: the tasks (:mod:`ablate.mask.lm_tasks`), the model scoring under the policy
(:class:`ablate.mask.policy_lm.MaskPolicyLM`, registered with lm-eval as ``maskpolicy-hf`` when
this module is imported), the per-task results (:mod:`ablate.mask.eval_results`); here the job
that runs them and writes its record, and its command line (``ablate eval``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from ablate.core import io, provenance
from ablate.core.phases import Phases
from ablate.mask import study
from ablate.mask.eval_results import SAMPLE_COLUMNS, macro, task_result
from ablate.mask.lm_tasks import TaskNotFoundError, data_file_list, load_tasks
from ablate.mask.masks import POLICIES, check_policy
from ablate.mask.policy_lm import MaskPolicyLM


def _doc_indices(
    task_objs: dict[str, Any], tasks: list[str], limit
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """The docs each task scores, its first ``limit`` (an int for all tasks, or task -> int), and
    the limits per task (recorded)."""
    limits = limit if isinstance(limit, dict) else {t: limit for t in tasks}
    bad = set(limits) - set(tasks)
    if bad:
        raise TaskNotFoundError(f"limit given for task(s) not evaluated: {', '.join(sorted(bad))}")
    return {
        t: list(
            range(
                len(task_objs[t].eval_docs)
                if limits.get(t) is None
                else min(int(limits[t]), len(task_objs[t].eval_docs))
            )
        )
        for t in tasks
    }, limits


def _run_lm_eval(lm, task_objs, tasks, task_manager, samples_idx, bootstrap_iters, seed) -> dict:
    """lm-eval's run of the tasks on ``lm``, every seed it takes set to ``seed``."""
    from lm_eval import simple_evaluate

    return simple_evaluate(
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


def _model_block(model: str | os.PathLike, model_id: str | None, revision: str | None) -> dict:
    """The record's ``model``: the resolved local path (None for a hub id), its id, revision."""
    local_path = Path(model)
    return {
        "path": str(local_path.resolve()) if local_path.exists() else None,
        "id": model_id or str(model),
        "revision": revision,
    }


def _inputs(model: str | os.PathLike, local: dict[str, dict]) -> dict[str, Any]:
    """The fingerprinted inputs: local tasks' data files, the model's manifest (else config)."""
    local_path = Path(model)
    inputs: dict[str, Any] = {
        f"task:{t}": f for t, cfg in local.items() for f in data_file_list(cfg)
    }
    manifest = local_path / "checkpoint_manifest.json"
    if manifest.exists():
        inputs["model_manifest"] = manifest
    elif (local_path / "config.json").exists():
        inputs["model_config"] = local_path / "config.json"
    return inputs


def _task_results(tasks, task_objs, res, headline) -> tuple[dict[str, Any], list[dict]]:
    """Each task's metrics.json entry (logged as it comes) and all tasks' sample rows."""
    per_task: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for t in tasks:
        per_task[t], task_rows = task_result(
            t, task_objs[t], res["results"][t], res["samples"][t], headline
        )
        rows.extend(task_rows)
        entry = per_task[t]
        print(
            f"[eval] {t}: {entry['headline_metric']}={entry['score']:.4f} "
            f"(chance {entry['chance']:.3f}, n={entry['n']})",
            flush=True,
        )
    return per_task, rows


def _metrics(policy, model_block, per_task, run_config, inputs, scorer, phases) -> dict[str, Any]:
    """metrics.json: the per-task and macro scores with their provenance; the phases last, so
    the provenance's own work counts."""
    metrics = {
        "policy": policy,
        "model": model_block,
        "tasks": per_task,
        "macro": macro(per_task),
        "provenance": provenance.collect(
            config_slice=run_config,
            inputs=inputs,
            started=phases.started,
            extra={
                "task_fingerprints": {t: v["fingerprint"] for t, v in per_task.items()},
                "scorer": scorer,
            },
        ),
    }
    metrics["run_id"] = metrics["provenance"]["run_id"]
    metrics["phases"] = phases.as_dict()
    return metrics


def evaluate(
    model: str | os.PathLike,
    tasks: list[str],
    policy: str,
    out_dir: str | os.PathLike,
    *,
    task_dirs=(),
    datasets: dict[str, dict] | None = None,
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

    ``datasets``: task -> its hub dataset pinned to a commit (``{path, name, revision}``,
    :func:`ablate.mask.tasks.pinned_datasets`), loaded at that commit; the config slice (the
    record's provenance) names them.
    ``limit``: docs per task (an int for all tasks, or task -> int); the first docs are used.
    ``headline``: the metric reported as each task's ``score`` (one name, or task -> name);
    default acc_norm where the task has it, else acc. Returns the metrics.json content.
    """
    phases = Phases()
    check_policy(policy)
    if not tasks:
        raise ValueError("no tasks to evaluate")
    print(
        f"[eval] tasks {', '.join(tasks)} under {policy} ({study.POLICY_DESCRIPTIONS[policy]})",
        flush=True,
    )
    with phases("load_tasks"):
        task_objs, local, task_manager = load_tasks(list(tasks), task_dirs, datasets)
    samples_idx, limits = _doc_indices(task_objs, tasks, limit)
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
    with phases("evaluate"):  # lm-eval: requests built, scored (evaluate.score), aggregated
        res = _run_lm_eval(lm, task_objs, tasks, task_manager, samples_idx, bootstrap_iters, seed)
    phases.add("evaluate.score", lm.scoring_s)
    per_task, rows = _task_results(tasks, task_objs, res, headline)
    model_block = _model_block(model, model_id, revision)
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
            **({"datasets": datasets} if datasets else {}),
        }
    )
    scorer = {
        "max_batch_tokens": max_batch_tokens,
        "share_contexts": share_contexts,
        "dtype": dtype,
        "device": str(lm.device),
    }
    metrics = _metrics(
        policy, model_block, per_task, run_config, _inputs(model, local), scorer, phases
    )
    _write(Path(out_dir), metrics, rows, phases)
    return metrics


def _write(out: Path, metrics: dict[str, Any], rows: list[dict[str, Any]], phases) -> None:
    """samples.parquet first, metrics.json last: a metrics.json means its samples exist."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    io.write_frame(out / "samples.parquet", frame)
    io.write_json(out / "metrics.json", metrics)
    print(
        f"[eval] macro {metrics['macro']['score']:.4f} (chance {metrics['macro']['chance']:.3f}) "
        f"-> {out / 'metrics.json'} in {time.time() - phases.started:.1f}s",
        flush=True,
    )


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
