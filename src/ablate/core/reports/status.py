"""STATUS.md, generated from the workflow's own state: per job done / running / interrupted /
stale (and why) / to run, its wall time and GPU hours, its headline numbers and artifacts; the
hours spent and the forecast of what remains.

Study-agnostic (each study's status part gives its numbers, staleness, results and forecast). It
reads only cheap state: no torch, no Snakemake DAG.
"""

from __future__ import annotations

import argparse
import base64
import csv
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate import studies
from ablate.core.config import ConfigError, add_configfiles_option
from ablate.core.execution import spend
from ablate.core.jobs import Job
from ablate.core.outputs import checkpoint_integrity, io
from ablate.core.outputs.records import benchmark_seconds, provenance_of, read_json
from ablate.core.planner.files import ON_GPU_COUNTS, PLAN_FILES
from ablate.core.planner.totals import TOTAL, error_reason, number, total_text
from ablate.core.reruns import runcache
from ablate.core.training import resume
from ablate.core.trees import experiments, results_lock, results_origin

STATUS_FILE = "STATUS.md"  # under the config's results folder
STATES = ("done", "running", "interrupted", "stale", "to run")
# a training loop's progress line: "[finetune causal] step 20/60, loss 7.774, ..."
_PROGRESS_LINE = re.compile(r"step (\d+)/(\d+)\b.*?\bloss ([-+0-9.eE]+|nan|inf)")


@dataclass
class Row:
    job: Job
    status: str
    why: str
    wall_s: float | None = None
    run_id: str | None = None
    headline: str = ""
    mtime: float = 0.0  # of its record (else its first output): newer upstream work reruns it
    # a GPU job's mean utilisation, percent (ablate.core.execution.gpu_watch)
    gpu_util: float | None = None


def incomplete_outputs(workdir: Path) -> dict[str, float]:
    """Output path -> start time of every job Snakemake marked started and not finished."""
    root = workdir / ".snakemake" / "incomplete"
    return {path: os.path.getmtime(f) for path, f in results_origin.snakemake_records(root)}


def recorded_inputs(workdir: Path, output: str) -> list[str] | None:
    """The inputs Snakemake recorded for the last job that wrote ``output``, or None."""
    root = workdir / ".snakemake" / "metadata"
    try:
        max_len = os.pathconf(root, "PC_NAME_MAX") or 255
    except OSError:
        return None
    key = base64.urlsafe_b64encode(os.path.normpath(output).encode()).decode()
    chunks = [key[i : i + max_len - 1] for i in range(0, len(key), max_len - 1)]
    record = read_json(root.joinpath(*["@" + c for c in chunks[:-1]], chunks[-1]))
    inputs = (record or {}).get("input")
    return inputs if isinstance(inputs, list) else None


def _foreign_input(job: Job, workdir: Path, produced: set[str], results: str | None) -> str | None:
    """An input under ``results`` the job's last run read and no job here makes, or None."""
    if not results or not job.outputs:
        return None
    inside = os.path.normpath(results) + os.sep
    read = map(os.path.normpath, recorded_inputs(workdir, next(iter(job.outputs.values()))) or [])
    return next((f for f in read if f.startswith(inside) and f not in produced), None)


def _snakemake_runs_in(workdir: Path) -> bool | None:
    """Whether a ``snakemake`` process of this host runs in ``workdir``; None without ``/proc``."""
    proc, target = Path("/proc"), Path(workdir).resolve()
    if not (proc / "self" / "cwd").exists():
        return None
    for p in proc.iterdir():
        if not p.name.isdigit():
            continue
        try:
            if Path(os.readlink(p / "cwd")) != target:
                continue
            argv = (p / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(os.path.basename(a) == "snakemake" for a in argv):
            return True
    return False


def _snakemake_lock(workdir: Path, results: str | None = None) -> str:
    """Snakemake's lock of the working directory: "free", "held" (a ``snakemake`` runs there on
    this host, or the results folder's lock names a run that runs or cannot be checked) or
    "stale": a killed run's, which stops the next run until ``snakemake --unlock``."""
    locks = Path(workdir) / ".snakemake" / "locks"
    if not (locks.is_dir() and any(locks.glob("*.lock"))):
        return "free"
    holder = results_lock.read(Path(workdir) / results) if results else None
    if holder is not None and results_lock.running(holder) is not False:
        return "held"
    return "stale" if _snakemake_runs_in(Path(workdir)) is False else "held"


def stale_lock_line(workdir: str | os.PathLike, results: str | None = None) -> str | None:
    if _snakemake_lock(Path(workdir), results) != "stale":
        return None
    where = Path(workdir) / ".snakemake" / "locks"
    return (
        f"a stale Snakemake lock ({os.path.normpath(where)}): the run that took it ended "
        "(no snakemake runs there on this host), and the next run stops on it until "
        "`snakemake --unlock`"
    )


def _last_progress(log: str | None) -> str | None:
    """ "step N/M, loss X" of the last progress line a training job logged."""
    try:
        text = Path(log).read_text(errors="replace")
    except (OSError, TypeError):
        return None
    found = _PROGRESS_LINE.findall(text)
    if not found:
        return None
    step, total, loss = found[-1]
    return f"step {step}/{total}, loss {float(loss):.4g}"


def restored_note(job: Job, workdir: Path) -> str:
    """How the job's last run restored its outputs from the run cache, else ""."""
    if not job.outputs:
        return ""
    marker = read_json(runcache.marker_path([workdir / next(iter(job.outputs.values()))]))
    if not marker or not marker.get("restored"):
        return ""
    key = str(marker.get("key") or "unknown")[:12]
    return f"restored from the run cache (key {key}, run {marker.get('from_run_id') or 'unknown'})"


def _rerun_note(job: Job, workdir: Path) -> str:
    """What the next run of a training job does with its checkpoints, else ""."""
    if job.kind != "train" or not job.record:
        return ""
    ckpts = workdir / Path(job.record).parent / checkpoint_integrity.CHECKPOINTS_DIR
    params = job.config.get("params") if isinstance(job.config, dict) else None
    return resume.rerun_note(ckpts, params if isinstance(params, dict) else None) or ""


def _own_status(
    job: Job, workdir: Path, markers: dict[str, float], active: bool, side: Any, config: Any
) -> Row:
    outputs = list(job.outputs.values())
    started = [markers[o] for o in map(os.path.normpath, outputs) if o in markers]
    if started:
        since = time.strftime("%H:%M:%S", time.localtime(min(started)))
        why = f"started {since}"
        if progress := _last_progress(workdir / job.log if job.log else None):
            why += f"; {progress}"
        if active:
            return Row(job, "running", why)
        then = _rerun_note(job, workdir) or "reruns"
        return Row(job, "interrupted", f"{why}; no Snakemake holds the folder: {then} next run")
    missing = [o for o in outputs if not (workdir / o).exists()]
    if missing:
        why = "; ".join(filter(None, [f"missing {missing[0]}", _rerun_note(job, workdir)]))
        return Row(job, "to run", why)
    wall = benchmark_seconds(workdir / job.benchmark) if job.benchmark else None
    # a job without a record is as new as its newest output
    mtime = max((workdir / o).stat().st_mtime for o in ([job.record] if job.record else outputs))
    restored = restored_note(job, workdir)
    if job.record is None:
        return Row(
            job, "done", "; ".join(filter(None, ["outputs exist", restored])), wall, mtime=mtime
        )
    record = read_json(workdir / job.record)
    if record is None:
        return Row(job, "stale", f"{job.record} is unreadable", wall, mtime=mtime)
    prov = provenance_of(record)
    changes = side.changes(job, prov.get("config"), config) if side else []
    headline = side.headline(job, record) if side else ""
    if wall is None and isinstance(prov.get("wall_time_s"), (int, float)):
        wall = float(prov["wall_time_s"])
    status, why = ("stale", ", ".join(changes)) if changes else ("done", "current config")
    then = _rerun_note(job, workdir) if changes else ""
    shared = "the base's job (an experiment's: not its to run)" if job.labels.get("shared") else ""
    step = record.get("resumed_from_step")
    resumed = "" if step is None else f"resumed from checkpoint-{step}"
    why = "; ".join(filter(None, [why, restored, resumed, then, shared]))
    util = (prov.get("gpu_use") or {}).get("util_mean_pct")
    return Row(job, status, why, wall, prov.get("run_id"), headline, mtime, util)


def job_rows(
    jobs: list[Job],
    workdir: str | os.PathLike = ".",
    side: Any = None,
    config: Any = None,
    produced: set[str] | None = None,
) -> list[Row]:
    """Each job's row, stale where an upstream job is not done or ran after it. ``side``: the
    study's status part; ``produced``: every output of the configuration's jobs (default: jobs')."""
    workdir = Path(workdir)
    markers = incomplete_outputs(workdir)
    results = (config or {}).get("results")
    active = _snakemake_lock(workdir, results) == "held"
    if produced is None:
        produced = {os.path.normpath(f) for j in jobs for f in j.outputs.values()}
    rows = {j.name: _own_status(j, workdir, markers, active, side, config) for j in jobs}
    for row in rows.values():  # the job lists are in run order, so one pass propagates
        if row.status != "done":
            continue
        up = [rows[u] for u in row.job.upstream if u in rows]
        behind = [u for u in up if u.status != "done"]
        newer = [u for u in up if u.mtime > row.mtime]
        if behind:
            row.status, row.why = "stale", f"reads {behind[0].job.name} ({behind[0].status})"
        elif newer:
            row.status, row.why = "stale", f"reads {newer[0].job.name}, which ran after it"
        # an upstream job to run explains an input no job makes (its outputs moved: a new run
        # id); only where none does was the last run another configuration's
        elif other := _foreign_input(row.job, workdir, produced, results):
            row.status, row.why = "stale", f"last run by another configuration (it read {other})"
    return list(rows.values())


def read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]


def planned_forecast(
    study: str, config: dict, workdir: Path, rows: list[Row], runtime_min: Callable[[Job], float]
) -> list[str]:
    """A study's jobs not done, in the planner's figures (plan.csv, else the frozen estimate):
    each setup's TOTAL row with every planned job left, else the left jobs' estimates in
    sequence; without a plan, their requested runtimes (``runtime_min(job)``: an upper bound)."""
    left = [r.job for r in rows if r.status != "done"]
    if not left:
        return []
    results = workdir / config["results"]
    plan = read_csv(results / PLAN_FILES["plan_csv"]) or read_csv(
        results / PLAN_FILES["estimate_csv"]
    )
    names = {j.name for j in left}
    planned = [p for p in plan if p["job"] in names]
    if not planned:
        hours = sum(runtime_min(j) for j in left) / 60
        why = (
            f"no plan yet (`snakemake {results}/plan.csv`)"
            if study in (config.get("plan") or {}).get("studies", ())
            else "not planned (`plan.studies`)"
        )
        return [
            f"- {study}: {len(left)} jobs left; {why}; at most {hours:.3g} h by the "
            "requested runtimes"
        ]
    unplanned = sorted(names - {p["job"] for p in planned})
    lines = []
    if unplanned:
        lines.append(
            f"- {study}: {_jobs(len(left))} left, {len(unplanned)} of them not in the plan "
            f"(the planner times no {', '.join(unplanned)}): the totals below leave them out"
        )
    for total in (p for p in plan if p["job"] == TOTAL):
        setup = total["setup"]
        jobs = [p for p in plan if p["setup"] == setup and p["job"] != TOTAL]
        mine = [p for p in jobs if p["job"] in names]
        if not mine:
            continue
        if len(mine) == len(jobs):
            text = total_text(total)
            reason = error_reason(total, jobs)
            text += f" ({reason})" if reason else ""
        else:
            text = _left_jobs_text(mine) + f" (of {len(jobs)} planned; the plan's whole run: "
            text += total_text(total) + ")"
        lines.append(f"- {study} on {setup}: {_jobs(len(mine), 'planned ')} left, {text}")
    # what more GPUs buy each data-parallel job left (the plan's per-GPU-count column)
    counts = {p["job"]: p[ON_GPU_COUNTS] for p in planned if p.get(ON_GPU_COUNTS)}
    lines += [f"- {study}: {job} {cell}" for job, cell in counts.items()]
    return lines


def _jobs(n: int, kind: str = "") -> str:
    return f"{n} {kind}job{'' if n == 1 else 's'}"


def _left_jobs_text(jobs: list[dict[str, str]]) -> str:
    """The jobs left on one setup, their estimates in sequence, worded as a TOTAL row."""
    missing = [p["job"] for p in jobs if number(p.get("est_s")) is None]
    unfit = [p["job"] for p in jobs if p.get("fits_memory") == "no"]
    note = (f"; no estimate for {', '.join(missing)}" if missing else "") + (
        f" (does not fit in memory: {', '.join(unfit)})" if unfit else ""
    )
    est = None if missing else sum(number(p["est_s"]) for p in jobs)
    costs = [number(p.get("est_cost_usd")) for p in jobs]
    cost = None if missing or None in costs else sum(costs)
    return total_text({"est_s": est, "est_cost_usd": cost, "note": "in sequence" + note})


def render(
    config: dict,
    rows: list[Row],
    key_results: dict[str, list[str]],
    forecast: list[str],
    held: str | None = None,
) -> str:
    """STATUS.md's text; ``held``: the locks' line (:func:`_held`; None: free)."""
    counts = {s: sum(r.status == s for r in rows) for s in STATES}
    spent = sum(r.wall_s or 0.0 for r in rows)
    gpu_h = sum((r.wall_s or 0.0) * r.job.gpus for r in rows) / 3600
    lines = [
        f"# Status of `{config['results']}`",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by `ablate status` from the outputs, "
        "their provenance, Snakemake's markers and benchmarks, and the planners' tables.",
        "",
        "**" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + "**; "
        f"{spent / 3600:.3g} h of job wall time spent ({gpu_h:.3g} GPU h).",
        "",
    ]
    if held:
        lines += [f"Lock: {held}.", ""]
    # a GPU job's mean utilisation, so an idle GPU shows; no column where no job sampled one
    util = any(r.gpu_util is not None for r in rows)
    head = ["stage", "job", "status", "why", "wall s", "GPU h"] + ["GPU util %"] * util
    head += ["numbers", "run_id", "artifact"]

    def cells(r: Row) -> list[str]:
        wall = "" if r.wall_s is None else f"{r.wall_s:.1f}"
        gpu_h = f"{r.wall_s * r.job.gpus / 3600:.3g}" if r.wall_s and r.job.gpus else ""
        shown = [r.job.shown_stage, r.job.name, r.status, r.why, wall, gpu_h]
        shown += ["" if r.gpu_util is None else f"{r.gpu_util:.0f}"] * util
        artifact = next(iter(r.job.outputs.values()), "") if r.status == "done" else ""
        return [*shown, r.headline, r.run_id or "", artifact]

    for study in config["studies"]:
        lines += [f"## {study}", ""]
        lines += _table(head, [cells(r) for r in rows if r.job.study == study])
        lines += ["", f"### Key results ({study})", ""]
        lines += key_results.get(study) or ["nothing yet"]
        lines.append("")
    lines += ["## Forecast of what remains", ""] + (forecast or ["nothing remains"]) + [""]
    return "\n".join(lines)


def _held(workdir: str | os.PathLike, results: str) -> str:
    """The results folder's lock and a stale Snakemake lock, as one line ("": neither)."""
    lines = [results_lock.status_line(Path(workdir) / results), stale_lock_line(workdir, results)]
    return "; ".join(filter(None, lines))


def build(config: dict, workdir: str | os.PathLike = ".") -> tuple[str, list[Row]]:
    """STATUS.md's text and its rows for a schema-validated config."""
    rows, results, forecast = [], {}, []
    jobs = experiments.study_jobs(config)  # an experiment's shared jobs: the base's
    produced = {os.path.normpath(f) for js in jobs.values() for j in js for f in j.outputs.values()}
    for study in config["studies"]:
        mod = studies.side(study, "status")
        study_rows = job_rows(jobs[study], workdir, mod, config, produced)
        rows += study_rows
        results[study] = mod.key_results(config, Path(workdir))
        forecast += mod.forecast(config, Path(workdir), study_rows)
    text = render(config, rows, results, forecast, _held(workdir, config["results"]) or None)
    if line := spend.status_line(workdir):  # what rented instances have cost (the Vast executor)
        text += f"\n## Rented instances\n\n{line}\n"
    return text, rows


def main(argv: list[str] | None = None) -> int:
    from ablate.core.planner.inputs import PlanError, load_config

    ap = argparse.ArgumentParser(
        prog="ablate status",
        description="Write <results>/STATUS.md: per job done / running / stale (why) / to run, "
        "wall time, GPU hours, numbers; the forecast of what remains. Runs no job.",
    )
    add_configfiles_option(ap, "the run's config files")
    ap.add_argument("--directory", "-d", default=".", help="the workflow's working directory")
    ap.add_argument("--out", help=f"default <directory>/<results>/{STATUS_FILE}")
    ap.add_argument("--print", action="store_true", help="also print it")
    args = ap.parse_args(argv)
    try:
        config = load_config(args.configfile)
        # its experiments (config `experiments`): each one's STATUS.md in its own tree
        mine = [p.config for p in experiments.plans(config)] if not args.out else []
    except (PlanError, ConfigError) as exc:
        print(f"ablate status: {exc}", file=sys.stderr)
        return 2
    for cfg in [config, *mine]:
        text, rows = build(cfg, args.directory)
        out = args.out or Path(args.directory) / cfg["results"] / STATUS_FILE
        path = io.write_text(out, text)
        counts = {s: sum(r.status == s for r in rows) for s in STATES}
        summary = f"{path}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        if held := _held(args.directory, cfg["results"]):
            summary += f"; {held}"
        print(text if args.print else summary)
    return 0
