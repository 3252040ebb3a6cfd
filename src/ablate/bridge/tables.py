"""The bridge study's tables: the per-entry summary, the accuracy curves, and the execution plan.

summary.csv has one row per grid entry; an entry declared ``same_as`` another carries that
entry's run id and numbers (``reuses`` says so), never numbers of its own. Every number comes from
a run's summary.json (written by :func:`ablate.bridge.train.train_entry`) or from the Snakemake
benchmark file of its job. The plan says per job whether its output exists with the current
configuration (done), exists with another one (stale: the provenance's config hash differs), or
is missing (to run), with the hours spent and a forecast for what is left.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.bridge import grid
from ablate.core import io
from ablate.core.provenance import config_hash

SUMMARY_COLUMNS = [
    "entry",
    "run_id",
    "reuses",
    "dataset",
    "direction",
    "K",
    "peak",
    "peak_step",
    "final",
    "degradation",
    "mean_prompt_tokens",
    "compression_ratio",
    "steps_done",
    "stop_reason",
    "wall_s",
    "benchmark_s",
    "gpu_hours",
]
#: Inserted after ``entry`` when the grid has seeds (``bridge.grid.<entry>.seeds``): the
#: declared entry of each row and its seed (empty on an entry without seeds).
SEED_COLUMNS = ["base_entry", "seed"]
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


def benchmark_seconds(path: str | os.PathLike) -> float | None:
    """Wall seconds of a Snakemake benchmark file (its ``s`` column); None if it does not exist."""
    p = Path(path)
    if not p.exists():
        return None
    return float(pd.read_csv(p, sep="\t")["s"].mean())


def build_summary(
    entries: dict[str, dict[str, Any]],
    summaries: dict[str, str | os.PathLike],
    benchmarks: dict[str, str | os.PathLike],
    gpus: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, curves) from each entry's run summary.json and its training benchmark file
    (``summaries`` / ``benchmarks``: run id -> path)."""
    rows, curves = [], []
    for name, e in entries.items():
        run_id = e["run_id"]
        s = json.loads(Path(summaries[run_id]).read_text())
        if s["run_id"] != run_id:  # the file must be the run it is named after
            raise ValueError(f"{name}: {summaries[run_id]} records run {s['run_id']}, not {run_id}")
        bench = benchmark_seconds(benchmarks[run_id])
        rows.append(
            dict(
                entry=name,
                run_id=run_id,
                reuses=e["same_as"] or "",
                dataset=e["dataset"],
                direction=e["direction"],
                K=s["K"],
                peak=s["peak"],
                peak_step=s["peak_step"],
                final=s["final"],
                degradation=s["degradation"],
                mean_prompt_tokens=s["mean_prompt_tokens"],
                compression_ratio=s["compression_ratio"],
                steps_done=s["steps_done"],
                stop_reason=s["stop_reason"],
                wall_s=s["wall_s"],
                benchmark_s=bench,
                gpu_hours=None if bench is None else bench * gpus / 3600,
                base_entry=e.get("base", name),
                seed=e.get("seed"),
            )
        )
        curves += [
            dict(entry=name, run_id=run_id, step=c["step"], accuracy=c["accuracy"])
            for c in s["curve"]
        ]
    return _with_seeds(pd.DataFrame(rows), entries), pd.DataFrame(curves)


def _with_seeds(df: pd.DataFrame, entries: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The summary's columns: :data:`SEED_COLUMNS` after ``entry`` where an entry has a seed."""
    if not any("seed" in e for e in entries.values()):
        return df.reindex(columns=SUMMARY_COLUMNS)
    df["seed"] = df["seed"].astype("Int64")
    return df.reindex(columns=[SUMMARY_COLUMNS[0], *SEED_COLUMNS, *SUMMARY_COLUMNS[1:]])


def write_summary(entries, summaries, benchmarks, gpus, csv, curves_csv) -> pd.DataFrame:
    summary, curves = build_summary(entries, summaries, benchmarks, gpus)
    io.write_frame(csv, summary)
    io.write_frame(curves_csv, curves)
    return summary


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
    counts = plan["status"].value_counts().to_dict()
    return [
        f"bridge plan: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}; "
        f"{plan['spent_h'].sum():.3f} h spent, {plan['forecast_h'].sum():.3f} h forecast "
        f"({plan['gpu_hours_forecast'].sum():.2f} GPU h)",
        *(f"  {r.job} {r.wildcards or '-'} [{r.entries}]: {r.status}" for r in plan.itertuples()),
    ]


def write_plan(jobs, resources, csv) -> pd.DataFrame:
    plan = build_plan(jobs, resources)
    io.write_frame(csv, plan)
    print("\n".join(plan_lines(plan)), flush=True)
    return plan
