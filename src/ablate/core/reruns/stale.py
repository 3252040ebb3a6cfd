"""Which finished jobs a config edit makes stale, named by the config keys that changed: one
``stale: <rule> <wildcards>: <changes>`` line per job, printed when the Snakefile is parsed.

Snakemake's dry-run reason for a params change prints whole parameter trees (KBs per job), where
the one edited key is hard to find; here a job's recorded config slice is compared with its slice
now (its study's status part, ``changes``). No torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ablate import studies
from ablate.core.jobs import Job
from ablate.core.outputs.records import recorded_config


def job_changes(job: Job, config: dict) -> list[str]:
    """The config keys changed since ``job``'s record was written ([] when none or no record)."""
    if job.record is None:
        return []
    old = recorded_config(Path(job.record))
    return studies.side(job.study, "status").changes(job, old, config)


def stale_lines(jobs: Iterable[Job], config: dict) -> list[str]:
    """One line per finished job whose recorded slice differs from its slice in ``config`` now."""
    lines = []
    for job in jobs:
        if changes := job_changes(job, config):
            label = " ".join([job.rule, "/".join(job.wildcards.values())]).strip()
            lines.append(f"stale: {label}: {', '.join(changes)}")
    return lines
