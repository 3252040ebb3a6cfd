"""The bridge study's result tables: the per-entry summary and the accuracy curves.

summary.csv has one row per grid entry; an entry declared ``same_as`` another carries that
entry's run id and numbers (``reuses`` says so), never numbers of its own. Every number comes from
a run's summary.json (written by :func:`ablate.bridge.train.train_entry`) or from the Snakemake
benchmark file of its job. The execution plan is :mod:`ablate.bridge.plan_table`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core import io

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
            )
        )
        curves += [
            dict(entry=name, run_id=run_id, step=c["step"], accuracy=c["accuracy"])
            for c in s["curve"]
        ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS), pd.DataFrame(curves)


def write_summary(entries, summaries, benchmarks, gpus, csv, curves_csv) -> pd.DataFrame:
    summary, curves = build_summary(entries, summaries, benchmarks, gpus)
    io.write_frame(csv, summary)
    io.write_frame(curves_csv, curves)
    return summary
