"""The bridge study's side of STATUS.md (ablate.core.reports.status; the status part of the study
protocol, ablate.core.jobs). No torch."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ablate.bridge import layout
from ablate.core.jobs import Job
from ablate.core.outputs.records import config_changes
from ablate.core.planner.totals import number
from ablate.core.reports.seeds import spread_lines, verdict_line
from ablate.core.reports.status import Row, planned_forecast, read_csv


def changes(job: Job, old: Any, config: dict[str, Any]) -> list[str]:
    """The keys changed between the slice the job's record holds and its slice now."""
    new = job.config
    if job.rule in ("bridge_model", "bridge_register") and isinstance(old, dict):
        old, new = old.get("model"), new["model"]
    elif job.rule in layout.IDENTITY_IN_CONFIG:
        new = new["identity"]
    return config_changes(old, new, job.labels["where"]) if new is not None else []


def headline(job: Job, record: dict) -> str:
    if job.rule == "bridge_train":
        return (
            f"peak {record.get('peak', float('nan')):.3f} @ {record.get('peak_step')}, "
            f"final {record.get('final', float('nan')):.3f}, {record.get('steps_done')} steps"
        )
    if job.rule == "bridge_model" and "final_eval_loss" in record:
        return f"eval loss {record['final_eval_loss']:.4g}, {record.get('steps_done')} steps"
    return ""


def key_results(config: dict[str, Any], workdir: Path) -> list[str]:
    """Per grid entry its K, peak and final accuracy (summary.csv), and each claim's verdict."""
    results = workdir / config["results"]
    summary = read_csv(results / layout.PATTERNS["summary"])
    lines = [
        f"- {r['entry']} (K {r['K']}{', reuses ' + r['reuses'] if r['reuses'] else ''}): "
        f"peak {float(r['peak']):.3f}, final {float(r['final']):.3f}"
        for r in summary
    ]
    lines += spread_lines(summary, ("base_entry",), "final", "final")
    return lines + [verdict_line(c) for c in claims(results)]


def run_numbers(results: Path) -> list[str]:
    """``ablate runs``' cells: each grid entry's peak and final accuracy."""
    return [
        f"{r['entry']} peak {float(r['peak']):.3f} final {float(r['final']):.3f}"
        for r in read_csv(results / layout.PATTERNS["summary"])
    ]


def run_scores(results: Path) -> dict[str, float]:
    """``ablate runs``' scores to compare trees by: ``<entry> peak`` and ``<entry> final``."""
    out = {}
    for r in read_csv(results / layout.PATTERNS["summary"]):
        for what in ("peak", "final"):
            if (value := number(r.get(what))) is not None:
                out[f"{r['entry']} {what}"] = value
    return out


def score_samples(
    results: Path, names: Iterable[str], shared: Path | None = None
) -> dict[str, Any]:
    """``ablate runs``' per-item values of an entry's final accuracy: its run's samples.parquet
    in ``results`` or (a run an experiment shares with its base) ``shared``."""
    import pandas as pd

    from ablate.core.reports.claims import Samples

    wanted, out = set(names), {}
    for r in read_csv(results / layout.PATTERNS["summary"]):
        name = f"{r['entry']} final"
        rel = layout.PATTERNS["run_samples"].format(run_id=r.get("run_id"))
        found = [t / rel for t in (results, shared) if t is not None and (t / rel).is_file()]
        if name in wanted and found:
            try:
                values = pd.read_parquet(found[0]).set_index("id")["correct"].astype(float)
            except (KeyError, OSError, ValueError):
                continue  # unreadable: no interval, as without samples
            out[name] = Samples(values, str(found[0]), name)
    return out


def claims(results: Path) -> list[dict[str, str]]:
    return read_csv(results / layout.PATTERNS["claims"])


def forecast(config: dict[str, Any], workdir: Path, rows: list[Row]) -> list[str]:
    """The planner's forecast of the jobs not done, else their requested runtimes."""
    res = config["bridge"]["resources"]

    def runtime_min(job: Job) -> float:
        group = layout.RESOURCE_GROUP.get(job.rule)
        return res[group]["runtime"] if group else 0.0

    return planned_forecast("bridge", config, workdir, rows, runtime_min)
