"""Time besides the compute (start-up, load, saves; boot and shipping of a rented instance).
Assumptions with defaults in ``plan.overheads`` (docs/planner.md). The bytes per parameter of a
dtype live here too (read by :mod:`.memory_need`; an optimizer's states:
:mod:`ablate.core.training.memory`).
"""

from __future__ import annotations

from ablate.core.planner.inputs import Reference, Setup
from ablate.core.planner.planned_jobs import PlannedJob

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def job_overhead(
    job: PlannedJob,
    setup: Setup,
    params: float,
    plan: dict,
    ref: Reference,
    downloads: bool = True,
) -> tuple[float, str]:
    """Seconds inside the job besides the compute: start-up, weight download/load, saves.
    ``downloads`` False: its hub models are on the machine already (:func:`downloads_on`). A
    measured overhead in ``ref`` replaces the modelled start-up, load and final save.
    """
    o = plan["overheads"]
    weights_mb = params * plan["bytes_per_param"] / 1e6
    measured = ref.job_overhead(job.kind, job.rule, setup.gpu, params)
    parts = [
        ("measured" if measured else "startup", measured.seconds if measured else o["startup_s"])
    ]
    if job.loads_hub_model and not setup.local and downloads:
        parts.append(("download", weights_mb / o["download_mb_s"]))
    if not measured:
        parts.append(("load", weights_mb / o["disk_mb_s"]))
    if job.writes_checkpoint:
        saves = 1
        shape = job.train_shape or {}
        if shape.get("save_steps") and shape.get("max_steps"):
            saves += shape["max_steps"] // shape["save_steps"]
        state_mb = params * plan["train_state_bytes_per_param"] / 1e6
        if saves > 1 or not measured:  # a measured overhead holds the final save
            final = 0.0 if measured else weights_mb / o["disk_mb_s"]
            extra = f"{saves - 1} checkpoint(s)" if measured else f"{saves} save(s)"
            parts.append((extra, final + (saves - 1) * state_mb / o["disk_mb_s"]))
    what = " + ".join(f"{k} {v:.0f}" for k, v in parts)
    return sum(v for _, v in parts), what + (f" ({measured.source})" if measured else "")


def rental_overhead(
    job: PlannedJob, setup: Setup, params: float, plan: dict, restart: bool = False
) -> tuple[float, str]:
    """Seconds a rented instance is billed outside the job: boot, shipping, checkpoint transfers
    (``restart``: what a retry on a new instance repeats, i.e. without the final download)."""
    if setup.local:
        return 0.0, "local"
    if setup.machine:
        return 0.0, "none: on the rented machine (its boot and setup once, in TOTAL)"
    if job.shares_instance:
        return (
            0.0,
            f"none: runs on the instance of {job.shares_instance} (a group job of the vast profile)",
        )
    o = plan["overheads"]
    weights_mb = params * plan["bytes_per_param"] / 1e6
    parts = [("boot", o["boot_s"]), ("setup", o["setup_s"])]
    if job.ships_checkpoint:
        parts.append(("ckpt in", weights_mb / o["transfer_mb_s"]))
    if job.writes_checkpoint and not restart:
        parts.append(("ckpt out", weights_mb / o["transfer_mb_s"]))
    return sum(v for _, v in parts), " + ".join(f"{k} {v:.0f}" for k, v in parts)


def downloads_on(setup: Setup, jobs: list[PlannedJob]) -> dict[str, bool]:
    """Whether each job (by id) downloads its hub weights: on one rented machine only the first
    job that loads a hub model (the hub cache keeps it for the next)."""
    seen: set[str] = set()
    out = {}
    for j in jobs:
        new = set(j.hub_models) - seen
        out[j.id] = not (setup.machine and j.hub_models) or bool(new)
        seen |= new
    return out
