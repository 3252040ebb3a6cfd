"""Which finished jobs a config edit makes stale, named by the config keys that changed: one
``stale: <rule> <wildcards>: <changes>`` line per job, printed when the Snakefile is parsed.

Snakemake's dry-run reason for a params change prints the whole old and new parameter trees (KBs
per job); the one edited key is hard to find there. Each job's record holds the config slice it
ran with (``Job.config`` then); its study's status part (``changes``) compares that with the slice
now, e.g. ``stale: finetune 3B: mask.finetune.variants.3B.learning_rate 0.001 -> 0.002``; a key
the variant takes from elsewhere adds where it is set now, ``(now set by
mask.finetune.defaults.learning_rate)``: the record cannot tell a defaults edit from the
variant's own key removed. Cheap (one small JSON read per finished job), no torch, silent when
nothing changed or nothing has run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ablate import studies
from ablate.core.jobs import Job
from ablate.core.outputs.records import recorded_config


def stale_lines(jobs: Iterable[Job], config: dict) -> list[str]:
    """One line per finished job (its record exists, under the working directory) whose recorded
    slice differs from its slice in ``config`` now."""
    lines = []
    for job in jobs:
        if job.record is None:
            continue
        old = recorded_config(Path(job.record))
        changes = studies.side(job.study, "status").changes(job, old, config)
        if changes:
            label = " ".join([job.rule, "/".join(job.wildcards.values())]).strip()
            lines.append(f"stale: {label}: {', '.join(changes)}")
    return lines
