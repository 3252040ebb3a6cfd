"""Zero-shot multiple-choice evaluation under a mask policy, through lm-evaluation-harness.

Stages 1, 2 and 4: score lm-eval tasks (by name, or local YAMLs) under a policy and write
``metrics.json`` + ``samples.parquet`` (docs/evaluation.md); ``ablate eval`` is :func:`main`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.core.config import sorted_tree
from ablate.core.outputs import io, provenance
from ablate.core.outputs.phases import Phases
from ablate.mask import layout
from ablate.mask.commands import eval_parser
from ablate.mask.eval_results import SAMPLE_COLUMNS, macro, task_result
from ablate.mask.lm_tasks import TaskNotFoundError, load_tasks
from ablate.mask.masks import check_policy
from ablate.mask.policies import POLICY_DESCRIPTIONS
from ablate.mask.policy_lm import MaskPolicyLM
from ablate.mask.tasks import cached_task_index
from ablate.upstream import lmeval


def _doc_indices(task_objs: dict[str, Any], limits: dict[str, int | None]) -> dict[str, list[int]]:
    """The docs each task scores: its first ``limits[task]`` (None: all)."""
    out = {}
    for t, n in limits.items():
        total = len(task_objs[t].eval_docs)
        out[t] = list(range(total if n is None else min(int(n), total)))
    return out


def _run_lm_eval(lm, task_objs, tasks, task_manager, samples_idx, bootstrap_iters, seed) -> dict:
    """lm-eval's run of the tasks on ``lm``, every seed it takes set to ``seed``."""
    import lm_eval.evaluator as evaluator

    # without lm-eval's environment report (0.5 s a run): the record keeps its own provenance
    with lmeval.without_env_info():
        return evaluator.simple_evaluate(
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


def _task_digests(read: dict[str, dict[str, str]]) -> dict[str, str]:
    """``task:<task>:<file>`` -> the sha256 of the bytes the task read (:func:`load_tasks`): its
    YAML and data files, named relative to the YAML's folder (absolute outside it)."""
    out = {}
    for t, files in read.items():
        folder = Path(next(iter(files))).parent  # the YAML comes first
        for f, digest in files.items():
            rel = os.path.relpath(f, folder)
            out[f"task:{t}:{f if rel.startswith('..') else rel}"] = digest
    return out


def _inputs(model: str | os.PathLike) -> dict[str, Any]:
    """The fingerprinted inputs besides the tasks: the model's manifest (else config)."""
    local_path = Path(model)
    inputs: dict[str, Any] = {}
    manifest = local_path / "checkpoint_manifest.json"
    if manifest.exists():
        inputs["model_manifest"] = manifest
    elif (local_path / "config.json").exists():
        inputs["model_config"] = local_path / "config.json"
    return inputs


def _task_results(
    tasks, task_objs, res, headline, continuation_tokens
) -> tuple[dict[str, Any], list[dict]]:
    """Each task's metrics.json entry (logged as it comes) and all tasks' sample rows."""
    per_task: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for t in tasks:
        per_task[t], task_rows = task_result(
            t, task_objs[t], res["results"][t], res["samples"][t], headline, continuation_tokens
        )
        rows.extend(task_rows)
        entry = per_task[t]
        print(
            f"[eval] {t}: {entry['headline_metric']}={entry['score']:.4f} "
            f"(chance {entry['chance']:.3f}, n={entry['n']})",
            flush=True,
        )
    return per_task, rows


def _metrics(
    policy, model_block, per_task, run_config, inputs, read, scorer, phases
) -> dict[str, Any]:
    """metrics.json: the per-task and macro scores with their provenance (``read``: what the
    local tasks read, :func:`_task_digests`); the phases last, so the provenance's own work
    counts."""
    metrics = {
        "policy": policy,
        "model": model_block,
        "tasks": per_task,
        "macro": macro(per_task),
        "provenance": provenance.collect(
            config_slice=run_config,
            inputs=inputs,
            digests=_task_digests(read),
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


@dataclass(frozen=True)
class EvalSpec:
    """An evaluation's config slice (config ``mask.eval``), one field per key. A task is
    ``{name, metric, limit}`` (metric None: ``acc_norm`` where the task has it, else ``acc``;
    limit None: all docs); ``softmax_dtype`` None is float32, left out of a slice
    (:data:`ablate.mask.layout.LATE_EVAL_KEYS`); ``datasets``: task -> its hub dataset pinned to a
    commit (:func:`ablate.mask.tasks.pinned_datasets`); ``device`` is the command line's. The
    pipeline builds it as ``EvalSpec(**slice)``, a library caller with :meth:`parse`."""

    tasks: list[dict[str, Any]]
    dtype: str
    max_batch_tokens: int
    share_contexts: bool
    bootstrap_iters: int
    seed: int
    protocol: str
    ablated_policy: str | None = None
    softmax_dtype: str | None = None
    datasets: dict[str, dict[str, Any]] | None = None
    task_dirs: list[str] | None = None
    device: str | None = None

    @classmethod
    def parse(
        cls,
        tasks: list[str],
        limit: int | dict[str, int] | None = None,
        headline: str | dict[str, str] | None = None,
        **keys: Any,
    ) -> EvalSpec:
        """A spec from task names, their ``limit`` and ``headline`` (one for all, or task ->
        value) and any other fields (``keys``): the one merge with the schema's defaults."""
        from ablate.core.config import schema_defaults

        def per_task(value, task):
            return value.get(task) if isinstance(value, dict) else value

        for what, value in (("limit", limit), ("headline", headline)):
            bad = set(value) - set(tasks) if isinstance(value, dict) else set()
            if bad:
                raise TaskNotFoundError(
                    f"{what} given for task(s) not evaluated: {', '.join(sorted(bad))}"
                )
        defaults = schema_defaults("properties/mask/properties/eval")
        fields = {
            k: v
            for k, v in defaults.items()
            if k not in ("tasks", "ablated_policy", *layout.LATE_EVAL_KEYS)
        }
        rows = [
            {"name": t, "metric": per_task(headline, t), "limit": per_task(limit, t)} for t in tasks
        ]
        return cls(tasks=rows, **{**fields, **keys})

    def config_slice(self) -> dict[str, Any]:
        """The slice it records in its provenance: its config keys, those set."""
        fields = dataclasses.asdict(self)
        del fields["device"]
        return sorted_tree({k: v for k, v in fields.items() if v is not None})


def evaluate(
    spec: EvalSpec,
    *,
    model: str | os.PathLike,
    policy: str,
    out_dir: str | os.PathLike,
    task_dirs=(),
    model_id: str | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``spec.tasks`` under ``policy``; write metrics.json and
    samples.parquet and return the former. ``task_dirs`` load before ``spec.task_dirs``;
    ``model_id`` labels the model in the record (default: ``model``)."""
    tasks = [t["name"] for t in spec.tasks]
    limit = {t["name"]: t["limit"] for t in spec.tasks}
    headline = {t["name"]: t["metric"] for t in spec.tasks}
    phases = Phases()
    check_policy(policy)
    if not tasks:
        raise ValueError("no tasks to evaluate")
    print(
        f"[eval] tasks {', '.join(tasks)} under {policy} ({POLICY_DESCRIPTIONS[policy]})",
        flush=True,
    )
    with phases("load_tasks"):
        task_objs, read, task_manager = load_tasks(
            list(tasks), [*task_dirs, *(spec.task_dirs or ())], spec.datasets, cached_task_index
        )
    samples_idx = _doc_indices(task_objs, limit)
    print(f"[eval] loading model {model}", flush=True)
    with phases("load_model"):  # the manifest's hashes checked while the weights load
        lm = MaskPolicyLM(
            model,
            mask_policy=policy,
            revision=revision,
            dtype=spec.dtype,
            device=spec.device,
            max_batch_tokens=spec.max_batch_tokens,
            share_contexts=spec.share_contexts,
            protocol=spec.protocol,
            softmax_dtype=spec.softmax_dtype,
        )
    with phases("evaluate"):  # lm-eval: requests built, scored (evaluate.score), aggregated
        res = _run_lm_eval(
            lm, task_objs, tasks, task_manager, samples_idx, spec.bootstrap_iters, spec.seed
        )
    phases.add("evaluate.score", lm.scoring_s)
    per_task, rows = _task_results(tasks, task_objs, res, headline, lm.continuation_tokens)
    model_block = {  # path None for a hub id
        "path": str(Path(model).resolve()) if Path(model).exists() else None,
        "id": model_id or str(model),
        "revision": revision,
    }
    scorer = {
        "max_batch_tokens": spec.max_batch_tokens,
        "share_contexts": spec.share_contexts,
        "dtype": spec.dtype,
        "device": str(lm.device),
    }
    metrics = _metrics(
        policy, model_block, per_task, spec.config_slice(), _inputs(model), read, scorer, phases
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


def _headlines(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--headline expects TASK=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def main(argv: list[str] | None = None) -> int:
    a = eval_parser().parse_args(argv)
    # the options given; the spec's defaults (the schema's) fill in the rest
    keys = ("dtype", "device", "max_batch_tokens", "protocol", "softmax_dtype")
    given = {k: getattr(a, k) for k in keys if getattr(a, k) is not None}
    if a.no_share_contexts:
        given["share_contexts"] = False
    spec = EvalSpec.parse(
        [t.strip() for t in a.tasks.split(",") if t.strip()],
        limit=a.limit,
        headline=_headlines(a.headline) or None,
        **given,
    )
    evaluate(
        spec,
        model=a.model,
        policy=a.policy,
        out_dir=a.out,
        task_dirs=a.task_dir,
        model_id=a.model_id,
        revision=a.revision,
    )
    return 0
