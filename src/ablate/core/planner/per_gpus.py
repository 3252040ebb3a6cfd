"""What more GPUs buy a data-parallel training job: its estimate on 1, 2, 4 and 8 GPUs of one
machine, each from :func:`~.estimate.job_row` with its ``gpu`` resource set to that count."""

from __future__ import annotations

from dataclasses import replace

from ablate.core.planner.estimate import job_row
from ablate.core.planner.inputs import CPU, Measurement, Reference, Setup
from ablate.core.planner.planned_jobs import PlannedJob
from ablate.core.planner.prices import Price
from ablate.core.planner.totals import hms

#: the GPU counts a job is forecast on
_COUNTS = (1, 2, 4, 8)
_NO_PRICE = Price(None, "none: a per-GPU-count forecast", None)


def gpu_counts(
    jobs: list[PlannedJob], setups: list[Setup], ref: Reference, ms: list[Measurement], plan: dict
) -> dict[str, str]:
    """Each data-parallel training job's id -> its job time and speed-up on each of
    :data:`_COUNTS` GPUs of the first GPU setup's GPU; empty without a GPU setup."""
    gpu = next((s.gpu for s in setups if s.gpu != CPU), None)
    if gpu is None:
        return {}
    out = {}
    for job in jobs:
        if not (job.kind == "train" and job.sharded):
            continue
        parts = []
        for n in _COUNTS:
            r = job_row(replace(job, gpus=n), Setup(gpu, n, machine=True), _NO_PRICE, ref, ms, plan)
            if r.get("fits_memory") == "no":
                parts.append(f"{n}: does not fit")
            elif r.get("est_job_s") is None:
                parts.append(f"{n}: no estimate")
            else:
                mark = ", extrapolated" if "extrapolated" in r["note"] else ""
                parts.append(f"{n}: {hms(r['est_job_s'])} ({r['speedup']:.2f}x{mark})")
        out[job.id] = f"on {gpu} GPUs of one machine: " + "; ".join(parts)
    return out
