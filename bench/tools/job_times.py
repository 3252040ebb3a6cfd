"""Per-job wall times of a finished run: one row per Snakemake benchmark file under a results
folder, plus the time inside the job's script where its output's provenance records it.

    python bench/tools/job_times.py results/smoke        # prints a markdown table

The gap between the two columns is what the job spends outside the stage's own work (Python and
library start-up, model build or load, saving, hashing): the per-job overhead that issue 16 cuts.
Jobs of a tree with ``ablate.core.outputs.phases`` also say where it went: ``startup`` (process
start to the stage function: interpreter, Snakemake's preamble, imports), each phase
(``load_model``, ``train`` with its ``train.steps``, ``save_final``, ``evaluate`` with its
``evaluate.score``...), and ``own_work_s`` (the steps, the scoring or the probe's forwards): wall_s
- own_work_s is the overhead the planner's ``job_overheads`` (config/gpu_measurements.yaml) record.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from ablate.core.outputs.records import benchmark_seconds, provenance_of, read_json
from ablate.mask.layout import PATTERNS

#: the phase that is the stage's own work, per rule (the rest is overhead)
OWN_WORK = {
    "finetune": "train.steps",
    "prepare_model": "train.steps",
    "eval_model": "evaluate.score",
    "leakage_probe": "probe",
}


#: per GPU rule of the mask study, its benchmark file and its main JSON output (PATTERNS keys)
RECORDS = {
    "prepare_model": ("prepare_model_benchmark", "base_summary"),
    "leakage_probe": ("leakage_benchmark", "leakage"),
    "finetune": ("finetune_benchmark", "finetune_summary"),
    "eval_model": ("eval_benchmark", "eval_metrics"),
}


def record(results: Path, rule: str, tsv: Path) -> dict:
    """The main JSON output of the job whose benchmark file is ``tsv``, or {} where none is."""
    if rule not in RECORDS:
        return {}
    bench, rec = (PATTERNS[k] for k in RECORDS[rule])
    wildcards = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+?)", re.escape(bench))
    found = re.fullmatch(wildcards, tsv.relative_to(results).as_posix())
    return (read_json(results / rec.format(**found.groupdict())) or {}) if found else {}


def table(results: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule, name = tsv.parent.name, tsv.stem
        b = pd.read_csv(tsv, sep="\t")
        rec = record(results, rule, tsv)
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
