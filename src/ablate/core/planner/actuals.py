"""After a run, or part of one: what each finished job took, on the row of the setup it ran on.

``error_pct`` compares job times only: no benchmark file sees instance boot or shipping (the
columns: docs/planner.md, "After a run").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ablate.core.planner.estimate import TOTAL
from ablate.core.planner.history import finished_job
from ablate.core.planner.inputs import Reference, log
from ablate.core.planner.planned_jobs import PlannedJob

#: Filled by add_actuals only: a frozen estimate needs none of them (and any it has are replaced).
ACTUAL_COLUMNS = ["actual_s", "actual_source", "error_pct", "status"]
NOT_RUN = "not run yet"
UNPLANNED = "ran on hardware that is not a setup of this plan: no estimate"


@dataclass
class Actual:
    seconds: float | None  # None: finished, but neither a benchmark file nor a wall time
    source: str
    gpu: str | None  # None: its record names no hardware, so no setup row can take the time
    count: int | None
    run_id: str | None


def _actual_of(job: PlannedJob, root: Path, ref: Reference) -> Actual | None:
    """The finished job's time and hardware (either may be missing); None: it has not run."""
    if not job.record or not (root / job.record).exists():
        return None
    done = finished_job(job, root, ref)
    if done is None:
        return Actual(None, f"{job.record} names no hardware (no provenance)", None, None, None)
    if done.bench_s is not None:
        seconds, source = done.bench_s, f"benchmark {job.benchmark}"
    elif done.wall_s:
        seconds, source = float(done.wall_s), f"wall_time_s of {job.record}"
    else:
        seconds, source = None, f"no benchmark file and no wall_time_s in {job.record}"
    return Actual(seconds, source, done.gpu, done.count, done.run_id)


def collect_actuals(jobs: list[PlannedJob], root: Path, ref: Reference) -> dict[str, Actual]:
    """Per finished job (its record exists): its :class:`Actual`."""
    out = {}
    for job in jobs:
        try:
            a = _actual_of(job, root, ref)
        except Exception as exc:  # an unreadable record: the job ran, its time is unknown
            log.warning("planner: cannot read the actual of %s: %r", job.id, exc)
            a = Actual(None, f"{job.record} unreadable ({exc})", None, None, None)
        if a is not None:
            out[job.id] = a
    return out


def add_actuals(df: pd.DataFrame, actuals: dict[str, Actual]) -> pd.DataFrame:
    """Fill the actual columns on the row of the setup each job ran on, ``status`` on every row;
    a job that ran on hardware of no setup gets a row of its own."""
    df = df.copy()
    for col in ("actual_s", "error_pct"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("actual_source", "status", "note"):
        df[col] = df[col].astype("object")
    job_rows = df["job"] != TOTAL
    df.loc[job_rows, "status"] = NOT_RUN
    extra = []
    for jid, a in actuals.items():
        ran = (df["job"] == jid) & job_rows
        if a.gpu is None:
            df.loc[ran, "status"] = f"ran, but no actual: {a.source}"
            continue
        label = f"{a.count}x {a.gpu}"
        df.loc[ran, "status"] = f"ran on {label}"
        hit = df.index[ran & (df["gpu"] == a.gpu) & (df["gpus"] == a.count)]
        seconds = None if a.seconds is None else round(a.seconds, 1)
        if not len(hit):
            extra.append(
                dict(
                    setup=label,
                    gpu=a.gpu,
                    gpus=a.count,
                    job=jid,
                    actual_s=seconds,
                    actual_source=a.source,
                    status="ran on this setup",
                    note=UNPLANNED,
                )
            )
            continue
        i = hit[0]
        df.loc[i, "status"] = "ran on this setup"
        df.loc[i, "actual_source"] = a.source
        if seconds is None:
            df.loc[i, "status"] += f", but no actual: {a.source}"
            continue
        df.loc[i, "actual_s"] = seconds
        est = df.loc[i, "est_job_s"]
        if not pd.isna(est):
            df.loc[i, "error_pct"] = round(100 * (est - a.seconds) / a.seconds, 1)
        if a.run_id and df.loc[i, "measured_run_id"] == a.run_id:
            df.loc[i, "note"] = (
                f"estimate used this run's own measurement, not a forecast; {df.loc[i, 'note']}"
            )
    for label in df["setup"].unique():
        rows = df[(df["setup"] == label) & job_rows]
        total = df.index[(df["setup"] == label) & ~job_rows]
        if not len(total):
            continue
        i = total[0]
        n_ran, n_here = rows["job"].isin(list(actuals)).sum(), rows["actual_s"].notna().sum()
        ran = f"{n_ran} of {len(rows)} jobs ran, {n_here} with an actual time on this setup"
        df.loc[i, "status"] = ran if n_ran else NOT_RUN
        if len(rows) and n_here == len(rows):
            df.loc[i, "actual_s"] = round(rows["actual_s"].sum(), 1)
            df.loc[i, "actual_source"] = "sum of the jobs"
            if rows["est_job_s"].notna().all():
                est = rows["est_job_s"].sum()
                df.loc[i, "error_pct"] = round(
                    100 * (est - df.loc[i, "actual_s"]) / df.loc[i, "actual_s"], 1
                )
    if extra:
        df = pd.concat([df, pd.DataFrame(extra)], ignore_index=True)
    return df
