"""Per-job wall times of a finished run: one row per Snakemake benchmark file under a results
folder, plus the time inside the job's script where its output's provenance records it.

    python bench/job_times.py results/smoke        # prints a markdown table

The gap between the two columns is what the job spends outside the stage's own work (Python and
library start-up, model build or load, saving, hashing): the per-job overhead that issue 16 cuts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def provenance_wall(results: Path, rule: str, name: str) -> float | None:
    """wall_time_s of the provenance block of the job's main JSON output, where there is one."""
    model, _, policy = name.partition(".")
    candidates = {
        "eval_model": results / "eval" / model / policy / "metrics.json",
        "finetune": results / "finetune" / name / "summary.json",
        "leakage_probe": results / "leakage" / f"{name}.json",
        "prepare_model": results / "model" / "base" / "summary.json",
    }
    path = candidates.get(rule)
    if path is None or not path.exists():
        return None
    prov = json.loads(path.read_text()).get("provenance") or {}
    return prov.get("wall_time_s")


def table(results: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule, name = tsv.parent.name, tsv.stem
        b = pd.read_csv(tsv, sep="\t")
        inside = provenance_wall(results, rule, name)
        rows.append(
            {
                "rule": rule,
                "job": name,
                "wall_s": round(float(b["s"].mean()), 1),
                "inside_script_s": None if inside is None else round(inside, 1),
                "max_rss_mb": round(float(b["max_rss"].mean()), 0),
            }
        )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    df = table(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
    print(df.to_markdown(index=False) if hasattr(df, "to_markdown") else df.to_string(index=False))
    print(f"\ntotal job wall time: {df['wall_s'].sum():.0f} s over {len(df)} jobs")
