"""Per-job wall times of a finished run: one row per Snakemake benchmark file under a results
folder, plus the time inside the job's script where its output's provenance records it.

    python bench/tools/job_times.py results/smoke        # prints a markdown table

The gap between the two columns is what the job spends outside the stage's own work (Python and
library start-up, model build or load, saving, hashing): the per-job overhead that issue 16 cuts.
Jobs of a tree with ``ablate.core.phases`` also say where it went: ``startup`` (process start to
the stage function: interpreter, Snakemake's preamble, imports), each phase (``load_model``,
``train`` with its ``train.steps``, ``save_final``, ``evaluate`` with its ``evaluate.score``...),
and ``own_work_s`` (the steps, the scoring or the probe's forwards): wall_s - own_work_s is the
overhead the planner's ``job_overheads`` (config/gpu_measurements.yaml) record.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ablate.core.records import benchmark_seconds, provenance_of, read_json

#: the phase that is the stage's own work, per rule (the rest is overhead)
OWN_WORK = {
    "finetune": "train.steps",
    "prepare_model": "train.steps",
    "eval_model": "evaluate.score",
    "leakage_probe": "probe",
}


def record(results: Path, rule: str, name: str) -> dict:
    """The job's main JSON output, or {} where there is none."""
    model, _, policy = name.partition(".")
    candidates = {
        "eval_model": results / "eval" / model / policy / "metrics.json",
        "finetune": results / "finetune" / name / "summary.json",
        "leakage_probe": results / "leakage" / f"{name}.json",
        "prepare_model": results / "model" / "base" / "summary.json",
    }
    return read_json(candidates.get(rule)) or {}


def table(results: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule, name = tsv.parent.name, tsv.stem
        b = pd.read_csv(tsv, sep="\t")
        rec = record(results, rule, name)
        inside = provenance_of(rec).get("wall_time_s")
        phases = rec.get("phases") or {}
        own = phases.get(OWN_WORK.get(rule, ""))
        rows.append(
            {
                "rule": rule,
                "job": name,
                "wall_s": round(benchmark_seconds(tsv), 1),  # one run: the rows' mean
                "inside_script_s": None if inside is None else round(inside, 1),
                "own_work_s": None if own is None else round(own, 1),
                "max_rss_mb": round(float(b["max_rss"].mean()), 0),
                "phases": ", ".join(
                    f"{k} {v:.1f}" for k, v in phases.items() if v is not None and k != "total"
                ),
            }
        )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="?", default="results", help="a run's results folder")
    df = table(Path(ap.parse_args().results))
    print(df.to_markdown(index=False) if hasattr(df, "to_markdown") else df.to_string(index=False))
    print(f"\ntotal job wall time: {df['wall_s'].sum():.0f} s over {len(df)} jobs")
