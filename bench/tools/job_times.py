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
``max_rss_mb`` is the benchmark file's; blank for a job that started warm
(``ablate.core.execution.warm``: the file measured the process that waited for it).

The table jobs (issue 82: each in 5 s on 2 idle cores) have no benchmark file: ``--table-jobs``
reruns each of :data:`TABLE_JOBS` in the run's working directory (a copy: it rewrites their
outputs), one at a time through Snakemake with the run cache off, and prints the wall and CPU
seconds (user + system) of the job's own process, from its start (interpreter, Snakemake's
preamble, imports) to its exit, sampled every 0.05 s:

    python bench/tools/job_times.py --table-jobs /tmp/run   # the folder holding results/
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from ablate.core.outputs.records import benchmark_seconds, provenance_of, read_json
from ablate.core.planner.files import PLAN_FILES
from ablate.core.reports.status import STATUS_FILE
from ablate.mask.layout import PATTERNS

#: each table job: its rule, the output its rerun is asked for (under the results folder) and
#: its script (the job's process runs a copy named after it)
TABLE_JOBS = {
    "recovery_table": (PATTERNS["recovery_csv"], "recovery_table.py"),
    "plot_scores": (PATTERNS["plot_scores"], "plot_scores.py"),
    "mask_claims": (PATTERNS["claims_csv"], "mask_claims.py"),
    "plan_estimate": (PLAN_FILES["estimate_csv"], "plan.py"),
    "plan": (PLAN_FILES["plan_csv"], "plan.py"),
    "status": (STATUS_FILE, "status.py"),
}

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
                # a warm job's benchmark measured the process that waited for it, not the job
                "max_rss_mb": (
                    None
                    if provenance_of(rec).get("hardware", {}).get("started_warm")
                    else round(float(b["max_rss"].mean()), 0)
                ),
                "phases": ", ".join(
                    f"{k} {v:.1f}" for k, v in phases.items() if v is not None and k != "total"
                ),
            }
        )
    return pd.DataFrame(rows)


def job_process(smk, script: str):
    """The job's process among Snakemake's: the Python running the rule's script copy."""
    import psutil

    try:
        for child in smk.children(recursive=True):
            try:
                if any(a.endswith("." + script) for a in child.cmdline()):
                    return child
            except psutil.Error:
                continue
    except psutil.Error:
        return None
    return None


def time_job(workdir: Path, results: str, rule: str) -> dict:
    """Rerun one table job through Snakemake in ``workdir``; its process's wall and CPU seconds."""
    import psutil

    target, script = TABLE_JOBS[rule]
    cmd = [sys.executable, "-m", "snakemake", "-c1", "--forcerun", rule, "--allowed-rules", rule]
    cmd += [f"{results}/{target}", "--config", "run_cache=False"]
    smk = psutil.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    job, last = None, None
    while smk.poll() is None:
        job = job or job_process(smk, script)
        if job is not None:
            try:
                cpu = job.cpu_times()
                last = (time.time() - job.create_time(), cpu.user + cpu.system)
            except psutil.Error:
                pass  # it ended: the last sample stands
        time.sleep(0.05)
    err = smk.stderr.read().decode(errors="replace")
    if smk.returncode != 0 or last is None:
        raise SystemExit(f"{rule}: snakemake exited {smk.returncode}:\n{err[-3000:]}")
    return {"rule": rule, "wall_s": round(last[0], 1), "cpu_s": round(last[1], 1)}


def table_jobs(workdir: Path, results: str) -> pd.DataFrame:
    return pd.DataFrame([time_job(workdir, results, rule) for rule in TABLE_JOBS])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="?", default="results", help="a run's results folder")
    ap.add_argument(
        "--table-jobs",
        metavar="WORKDIR",
        help="rerun and time each table job in this copy of a finished run's working directory "
        "(results: its results folder, relative to it)",
    )
    args = ap.parse_args()
    if args.table_jobs:
        df = table_jobs(Path(args.table_jobs), args.results)
        print(df.to_markdown(index=False))
        raise SystemExit(0)
    df = table(Path(args.results))
    print(df.to_markdown(index=False) if hasattr(df, "to_markdown") else df.to_string(index=False))
    print(f"\ntotal job wall time: {df['wall_s'].sum():.0f} s over {len(df)} jobs")
