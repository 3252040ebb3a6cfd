"""What the instances a run rented have cost so far: written by the Vast.ai executor
(``snakemake_executor_plugin_ablate_vast.spend``) as it rents, polls and destroys, read by STATUS."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ablate.core.outputs import io

#: Under the working directory, beside Snakemake's own records of the run.
SPEND_FILE = Path(".snakemake") / "auxiliary" / "vast_spend.json"


def write(workdir: str | os.PathLike, record: dict[str, Any]) -> Path:
    return io.write_json(Path(workdir) / SPEND_FILE, record)


def read(workdir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(workdir) / SPEND_FILE
    try:
        return io.load_json(path)
    except (OSError, ValueError):
        return None


def status_line(workdir: str | os.PathLike) -> str | None:
    """One line for STATUS.md, or None when no run rented anything here."""
    rec = read(workdir)
    if not rec:
        return None
    bound = rec.get("bound_usd")
    of = f" of the ${bound:.2f} bound" if bound else " (no bound set)"
    return (
        f"Vast.ai spend of the last run: ${rec['spent_usd']:.2f}{of}, "
        f"{rec['instances']} instance(s) rented, {rec['running']} running at {rec['updated']}."
    )
