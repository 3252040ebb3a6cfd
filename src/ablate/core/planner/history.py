"""Past runs: what a finished job's record (provenance) and benchmark file say, and the
throughput this pipeline measured in them.

A record that cannot be read is skipped with a warning: it never stops the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.core.outputs.records import benchmark_seconds, provenance_of, read_json
from ablate.core.planner.inputs import CPU, Measurement, Reference, Setup, log
from ablate.core.planner.overheads import job_overhead
from ablate.core.planner.planned_jobs import PlannedJob, StudyPlan

#: the phase of a job's record (ablate.core.outputs.phases) that is its own work, per kind
_OWN_WORK_PHASE = {"eval": "evaluate.score", "probe": "probe"}


@dataclass
class _FinishedJob:
    data: dict[str, Any]
    gpu: str
    count: int
    run_id: str | None
    wall_s: float | None  # provenance wall_time_s (inside the script)
    bench_s: float | None  # Snakemake benchmark file (the whole job)


def finished_job(job: PlannedJob, root: Path, ref: Reference) -> _FinishedJob | None:
    """The job's finished run, or None: not run, or its record names no hardware."""
    if not job.record or not (root / job.record).exists():
        return None
    data = read_json(root / job.record) or {}
    prov = provenance_of(data)
    hw = prov.get("hardware") if isinstance(prov, dict) else None
    if not isinstance(hw, dict) or not hw:
        return None
    gpus = hw.get("gpus") or []  # none: it ran on the CPU
    gpu = (ref.canonical_gpu(gpus[0]) or gpus[0]) if gpus else CPU
    bench = benchmark_seconds(root / job.benchmark) if job.benchmark else None
    run_id = prov.get("run_id") or data.get("run_id")
    return _FinishedJob(data, gpu, max(len(gpus), 1), run_id, prov.get("wall_time_s"), bench)


def pipeline_measurements(plans: list[StudyPlan], root: Path, ref: Reference, plan: dict) -> list:
    """Throughput this pipeline measured in earlier runs. Each run's model size comes from its
    study, so results left by another config (the embedded tiny model) cannot pose as the 3B one."""
    out: list[Measurement] = []
    for sp in plans:
        for job in sp.jobs:
            try:
                m = _measurement(sp, job, root, ref, plan)
            except Exception as exc:  # a record of an unexpected shape: skip it, say so
                log.warning("planner: cannot read a measurement from %s: %r", job.record, exc)
                continue
            if m is not None:
                out.append(m)
    return out


def _measurement(
    sp: StudyPlan, job: PlannedJob, root: Path, ref: Reference, plan: dict
) -> Measurement | None:
    done = finished_job(job, root, ref)
    if done is None:
        return None
    params = sp.params_of_run(job, done.data)
    if params is None:
        return None
    where = f"{job.record} (run {done.run_id} on {done.count}x {done.gpu})"
    this_run = dict(
        kind=job.kind,
        gpu=done.gpu,
        params=params,
        origin="pipeline",
        run_id=done.run_id,
        job=job.id,
    )
    if job.kind == "train":
        tp = done.data.get("throughput") or {}
        if not tp.get("train_tokens_per_s"):
            return None
        run_params = done.data.get("params") or {}
        return Measurement(
            **this_run,
            policy=done.data.get("policy") or job.policy,
            optim=run_params.get("optim"),
            packing=bool(run_params.get("packing")),
            compile_layers=bool(run_params.get("compile_layers")),
            tokens_per_s=float(tp["train_tokens_per_s"]) / done.count,
            source=f"train_tokens_per_s {tp['train_tokens_per_s']:.4g} of {where}",
        )
    secs, what = (done.wall_s, "wall_time_s") if done.wall_s else (done.bench_s, "benchmark s")
    tokens = sp.tokens_of_run(job, done.data) or job.tokens
    own = _OWN_WORK_PHASE.get(job.kind)
    scored = (done.data.get("phases") or {}).get(own) if own else None
    if tokens and isinstance(scored, (int, float)) and scored > 0:
        # the record says how long its own work took (ablate.core.outputs.phases): no model needed
        return Measurement(
            **this_run,
            policy=job.policy,
            tokens_per_s=tokens / scored / done.count,
            source=f"{tokens:.4g} tokens in phases.{own} {scored:.4g} s, {where}",
        )
    if not secs or not tokens:
        return None
    load = job_overhead(job, Setup(done.gpu, done.count, local=True), params, plan, ref)[0]
    compute = max(secs - load, 0.5 * secs)
    return Measurement(
        **this_run,
        policy=job.policy,
        tokens_per_s=tokens / compute / done.count,
        source=f"{tokens:.4g} tokens in {what} {secs:.4g} s - modelled load "
        f"{secs - compute:.3g} s, {where}",
    )
