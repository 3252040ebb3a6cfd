"""The bridge study's tables: the per-entry summary and the accuracy curves.

An entry declared ``same_as`` another carries that entry's run id and numbers (``reuses`` says
so), never numbers of its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.outputs import io
from ablate.core.outputs.records import benchmark_seconds

#: The columns a row copies from its run's summary.json.
_RUN_COLUMNS = [
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
]
SUMMARY_COLUMNS = [
    "entry",
    "run_id",
    "reuses",
    "dataset",
    "direction",
    *_RUN_COLUMNS,
    "benchmark_s",
    "gpu_hours",
]
#: Inserted after ``entry`` when the grid has seeds: each row's declared entry and its seed.
_SEED_COLUMNS = ["base_entry", "seed"]


def build_summary(
    entries: dict[str, dict[str, Any]],
    summaries: dict[str, str | os.PathLike],
    benchmarks: dict[str, str | os.PathLike],
    gpus: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, curves); ``summaries`` / ``benchmarks``: run id -> path."""
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
                **{k: s[k] for k in _RUN_COLUMNS},
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
    """The summary's columns: :data:`_SEED_COLUMNS` after ``entry`` where an entry has a seed."""
    if not any("seed" in e for e in entries.values()):
        return df.reindex(columns=SUMMARY_COLUMNS)
    df["seed"] = df["seed"].astype("Int64")
    return df.reindex(columns=[SUMMARY_COLUMNS[0], *_SEED_COLUMNS, *SUMMARY_COLUMNS[1:]])


def write_summary(entries, summaries, benchmarks, gpus, csv, curves_csv) -> pd.DataFrame:
    summary, curves = build_summary(entries, summaries, benchmarks, gpus)
    io.write_frame(csv, summary)
    io.write_frame(curves_csv, curves)
    return summary
