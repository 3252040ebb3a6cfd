"""The expected extra time of a job on an interruptible (bid) instance: restarts after being outbid.

Interruptions arrive as a Poisson process at ``plan.interruptible.per_hour`` (an assumption); each
costs a restart and the work since the newest *copied* checkpoint, so the billed time T of a job of
``base`` seconds solves T = base + rate x T x per (docs/planner.md, "Interruptible setups").
"""

from __future__ import annotations

from ablate.core.planner.planned_jobs import PlannedJob


def _checkpoint_interval(job: PlannedJob, compute_s: float) -> tuple[float, bool]:
    """Seconds of compute between two checkpoints a retry resumes from, and whether it resumes."""
    shape = job.train_shape or {}
    save, steps = job.resume_every or (shape.get("save_steps"), shape.get("max_steps"))
    if job.kind == "train" and save and steps and save < steps:
        return compute_s * save / steps, True
    return compute_s, False


def interruption_overhead(
    job: PlannedJob, base_s: float, compute_s: float, restart_s: float, params: float, plan: dict
) -> tuple[float | None, str]:
    """Expected seconds restarts add to a job of ``base_s`` billed seconds, and how; None when
    it is outbid faster than it progresses."""
    rate = plan["interruptible"]["per_hour"] / 3600
    interval, resumes = _checkpoint_interval(job, compute_s)
    copy_s = 0.0
    if resumes:  # the copy lags the newest checkpoint, and the retry ships it up again
        trained = job.trainable_params or params  # a frozen model's weights are not in it
        state_mb = trained * plan["train_state_bytes_per_param"] / 1e6
        copy_s = state_mb / plan["overheads"]["transfer_mb_s"]
        restart_s += copy_s
    per = restart_s + interval / 2 + copy_s
    what = (
        f"{plan['interruptible']['per_hour']:g} interruptions/h (plan.interruptible.per_hour, "
        f"an assumption) x {per:.0f} s each: restart {restart_s:.0f} + "
        + (
            f"half a checkpoint interval {interval / 2:.0f} + the copy's lag {copy_s:.0f}"
            if resumes
            else f"half the job's compute {interval / 2:.0f} (no checkpoint to resume from)"
        )
    )
    if rate * per >= 1:
        return None, f"never finishes: {what}; interruptions come faster than it progresses"
    return base_s / (1 - rate * per) - base_s, what
