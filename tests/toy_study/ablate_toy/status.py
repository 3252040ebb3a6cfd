"""The toy study's side of STATUS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.core.jobs import Job
from ablate.core.outputs.records import config_changes
from ablate.core.reports.seeds import verdict_line
from ablate.core.reports.status import read_csv
from ablate_toy import layout


def headline(job: Job, record: dict) -> str:
    return f"{record.get('heads')} heads of {record.get('flips')}"


def changes(job: Job, old: Any, config: dict[str, Any]) -> list[str]:
    return config_changes(old, job.config, job.labels["where"])


def key_results(config: dict[str, Any], workdir: Path) -> list[str]:
    return [verdict_line(c) for c in read_csv(workdir / layout.path(config, "claims"))]


def forecast(config: dict[str, Any], workdir: Path, rows: list[Any]) -> list[str]:
    return []
