"""What a ``snakemake`` run of this workflow prints: Snakemake's own lines, made to summarise.

The logger plugin ``ablate`` (``src/snakemake_logger_plugin_ablate``) prints Snakemake's records
as Snakemake does, except: a reason's parameter trees (tens of KB after one config edit, which
scrolled the dry run's ``stale:`` lines away) become one phrase, and on a terminal a job's lines
are cut to :data:`WIDTH` (a file or a pipe gets them whole); the progress line adds the time left
by the planner's estimates; the end-of-run summary comes last. No torch: the Snakefile imports it.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the longest line a job's block prints
WIDTH = 300
#: the record attribute that marks the end-of-run summary (the plugin prints it last)
SUMMARY = "ablate_summary"
_PARAMS_CHANGED = "Params have changed since last execution"


def _short_files(text: str, width: int) -> str:
    """A comma-separated file list cut to about ``width`` characters (``a, b, ... (+127 more)``)."""
    if len(text) <= width:
        return text
    items = text.split(", ")
    kept: list[str] = []
    for item in items:
        if len(", ".join([*kept, item])) > width - 20 and kept:
            break
        kept.append(item)
    return ", ".join(kept) + f", ... (+{len(items) - len(kept)} more)"


def short_reason(reason: str, width: int | None = WIDTH) -> str:
    """Snakemake's reason for a job without parameter trees, cut to ``width`` (None: whole)."""
    parts = []
    for part in reason.split("; "):
        if part.startswith(_PARAMS_CHANGED):
            part = f"{_PARAMS_CHANGED} (the stale: lines name the keys)"
        elif part and not re.match(r"[A-Z]", part) and parts:
            continue  # a piece of a parameter tree that held "; "
        label, sep, files = part.partition(": ")
        if width and sep and len(part) > width // 2:
            part = label + sep + _short_files(files, width // 2 - len(label))
        parts.append(part)
    text = "; ".join(dict.fromkeys(parts))
    return text if not width or len(text) <= width else text[: width - 4] + " ..."


def short_line(line: str, width: int = WIDTH) -> str:
    """One line of a job's block (``    key: value``) at most ``width`` characters."""
    if len(line) <= width:
        return line
    head, sep, value = line.partition(": ")
    if not sep:
        return line[: width - 4] + " ..."
    return head + sep + _short_files(value, width - len(head) - 2)


@dataclass
class Followed:
    """The jobs a run has to do (name -> its record file) and the planner's estimates of them."""

    records: dict[str, str]
    estimates: Path
    setup: str
    studies: dict[str, str] = field(default_factory=dict)
    since: float = field(default_factory=time.time, init=False)  # when the run started
    _est: dict[str, float] | None = None

    def estimate(self) -> dict[str, float] | None:
        """est_job_s of each job on :attr:`setup`, once the estimate file exists."""
        if self._est is None and self.estimates.is_file():
            with open(self.estimates, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("setup") == self.setup]
            est = {}
            for r in rows:
                try:
                    est[r["job"]] = float(r["est_job_s"])
                except (KeyError, TypeError, ValueError):
                    continue
            self._est = est or None
        return self._est

    def left_s(self) -> tuple[float, int] | None:
        """(seconds, jobs) the estimated jobs not finished yet take by the estimates."""
        est = self.estimate()
        if est is None:
            return None
        left = [n for n in self.left() if n in est]
        return sum(est[n] for n in left), len(left)

    def left(self) -> list[str]:
        """The jobs not finished yet."""
        return [
            name
            for name, record in self.records.items()
            if not (os.path.exists(record) and os.path.getmtime(record) >= self.since)
        ]

    def _unestimated(self) -> dict[str, int]:
        """Study -> how many of its jobs to go have no estimate (once the estimates exist)."""
        est = self.estimate()
        if est is None:
            return {}
        return Counter(self.studies.get(n, "?") for n in self.left() if n not in est)


_followed: Followed | None = None


def follow(
    jobs: list[Any], to_make: set[str], estimates: str | os.PathLike, setup: str | None
) -> None:
    """Follow the run's jobs with a record among ``jobs`` that make a file of ``to_make`` (the
    DAG's jobs to run); ``setup`` None: no time left is said."""
    global _followed
    make = {os.path.normpath(f) for f in to_make}
    followed = [
        j
        for j in jobs
        if j.kind and j.record and any(os.path.normpath(o) in make for o in j.outputs.values())
    ]
    records = {j.name: j.record for j in followed}
    studies = {j.name: j.study for j in followed}
    _followed = Followed(records, Path(estimates), setup, studies) if setup and records else None


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.4 h``, ``2.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def progress_note() -> str:
    """What the progress line adds: the time left by the planner's estimates ("" unknown)."""
    if _followed is None or (left := _followed.left_s()) is None:
        return ""
    seconds, jobs = left
    parts = []
    if jobs:
        parts.append(
            f"about {duration(seconds)} left by the planner's estimates "
            f"({jobs} planned job{'s' if jobs > 1 else ''} to go on {_followed.setup})"
        )
    for study, n in sorted(_followed._unestimated().items()):
        parts.append(f"{n} {study} job{'s' if n > 1 else ''} to go, not estimated (plan.studies)")
    return "".join(f"; {p}" for p in parts)


def local_setup(config: dict[str, Any]) -> str | None:
    """The planner's label of this machine's setup ("1x cpu", "2x H100 SXM"), as
    ``plan.setups``' ``{gpu: local}`` names it; None when its GPU's name is unknown."""
    from ablate.core.execution import gpus

    ids = gpus.pool()
    if not ids:
        return "1x cpu"
    try:
        names = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not names:
        return None
    from ablate.core.planner.inputs import load_reference

    name = load_reference(config["plan"]["measurements"]).canonical_gpu(names[0].strip())
    return f"{len(ids)}x {name}" if name else None


def run_summary(
    config: dict[str, Any], study_names: list[str], configfiles: list[str], workdir: str = "."
) -> list[str]:
    """The lines a successful run ends with: each study's headline claims with their evidence
    (a per-task claim, ``learned/emb_count``, details a headline one), its result files, the
    report command, and last each study's answer to its question (its status part's ``answer``)."""
    from ablate import studies
    from ablate.core.reports.claims import verdict_text

    results = config["results"]
    lines = [f"Finished: the results are under {results}/ (what ran and why: {results}/STATUS.md)"]
    answers = []
    for study in study_names:
        targets = studies.side(study, "layout").targets(config)
        answer = getattr(studies.side(study, "status"), "answer", None)
        for table in (t for t in targets if t.endswith(".csv")):
            rows = _claims_rows(Path(workdir) / table)
            headline = [r for r in rows if "/" not in r["claim"]]
            if not headline:
                continue
            if answer is not None and (answered := answer(rows)):
                answers.append(f"{study}: {answered}")
            counts = Counter(r["verdict"] for r in headline)
            said = ", ".join(f"{n} {v}" for v, n in counts.items())
            lines.append(f"{study} claims ({table}): {said}")
            for r in headline:
                evidence = (r.get("evidence") or "").split(" (")[0]
                verdict = verdict_text(r["verdict"], r.get("test"))
                lines.append(short_line(f"  {r['claim']}: {verdict} ({evidence})", 200))
        made = [t for t in targets if os.path.exists(os.path.join(workdir, t))]
        if made:  # a run of some targets only: the study's files it has
            lines.append(short_line(f"{study} results: " + ", ".join(made)))
    files = " ".join(os.path.relpath(f, workdir) for f in configfiles)
    lines.append(
        f"Report: snakemake --report {results}/report.html"
        + (f" --configfile {files}" if files else "")
    )
    return lines + answers


def _claims_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a claims table (columns ``claim`` and ``verdict``); [] for another table."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    return rows if rows and {"claim", "verdict"} <= rows[0].keys() else []
