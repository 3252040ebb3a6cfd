"""The bridge study's execution plan (plan.csv): per job of :func:`ablate.bridge.grid.jobs`
whether its output exists with the current configuration (done), exists with another one (stale:
the provenance's config hash differs), or is missing (to run), with the hours spent and a
forecast for what is left."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.bridge import grid
from ablate.bridge.tables import benchmark_seconds
from ablate.core import io
from ablate.core.provenance import config_hash

PLAN_COLUMNS = [
    "job",
    "wildcards",
    "entries",
    "status",
    "why",
    "spent_h",
    "forecast_h",
    "gpu_hours_spent",
    "gpu_hours_forecast",
]


def _recorded_hash(path: Path) -> str | None:
    """The config hash in a record's provenance (a summary.json, card.json or provenance sidecar)."""
    try:
        block = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return (block.get("provenance") or block).get("config_hash")


def _group(job: dict[str, Any]) -> str:
    return grid.RESOURCE_GROUP.get(job["rule"], "")


def job_status(job: dict[str, Any]) -> tuple[str, str]:
    """(status, why) of one job: an output missing, its record's config hash another, or done."""
    missing = [o for o in job["outputs"] if not Path(o).exists()]
    if missing:
        return "to run", f"missing {missing[0]}"
    recorded = _recorded_hash(Path(job["record"]))
    current = config_hash(job["config"])
    if recorded != current:
        return "stale", f"{job['record']} records config {recorded}, the config is now {current}"
    return "done", f"{job['record']} records the current config {current}"


def build_plan(jobs: list[dict[str, Any]], resources: dict[str, Any]) -> pd.DataFrame:
    """One row per job of :func:`ablate.bridge.grid.jobs` (paths under the results folder):
    status, hours spent and forecast.

    Spent: the job's benchmark file (when it ran under this results folder). Forecast for a job
    still to run: the mean measured seconds per step of the finished jobs of its rule scaled by its
    steps (training), the mean of the finished ones (other rules), else its requested runtime
    (``resources.<group>.runtime``, an upper bound).
    """
    measured: dict[str, list[tuple[float, int]]] = {}
    rows = []
    for job in jobs:
        status, why = job_status(job)
        spent = benchmark_seconds(job["benchmark"]) if job["benchmark"] else None
        steps = (job["config"].get("params") or {}).get("steps", 1)
        if status == "done" and spent is not None:
            measured.setdefault(job["rule"], []).append((spent, steps))
        rows.append(dict(job=job, status=status, why=why, spent=spent, steps=steps))
    out = []
    for r in rows:
        job, group = r["job"], _group(r["job"])
        gpus = resources.get(group, {}).get("gpu", 0) if group else 0
        forecast = None
        if r["status"] != "done":
            done = measured.get(job["rule"])
            if done:
                per_step = sum(s / n for s, n in done) / len(done)
                forecast = per_step * r["steps"]
            elif group:
                forecast = 60.0 * resources[group]["runtime"]
        out.append(
            dict(
                job=job["rule"],
                wildcards=",".join(f"{k}={v}" for k, v in job["wildcards"].items()),
                entries=" ".join(job["entries"]),
                status=r["status"],
                why=r["why"],
                spent_h=_h(r["spent"]),
                forecast_h=_h(forecast),
                gpu_hours_spent=_h(r["spent"], gpus),
                gpu_hours_forecast=_h(forecast, gpus),
            )
        )
    return pd.DataFrame(out, columns=PLAN_COLUMNS)


def _h(seconds: float | None, gpus: int = 1) -> float | None:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return None
    return round(seconds * gpus / 3600, 4)


def plan_lines(plan: pd.DataFrame) -> list[str]:
    """The plan for the log: counts and hours, then one line per job."""
    counts = plan["status"].value_counts().to_dict()
    return [
        f"bridge plan: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}; "
        f"{plan['spent_h'].sum():.3f} h spent, {plan['forecast_h'].sum():.3f} h forecast "
        f"({plan['gpu_hours_forecast'].sum():.2f} GPU h)",
        *(f"  {r.job} {r.wildcards or '-'} [{r.entries}]: {r.status}" for r in plan.itertuples()),
    ]


def write_plan(jobs, resources, csv) -> pd.DataFrame:
    """plan.csv, and the plan in the job's log."""
    plan = build_plan(jobs, resources)
    io.write_frame(csv, plan)
    print("\n".join(plan_lines(plan)), flush=True)
    return plan
