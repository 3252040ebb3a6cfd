"""Which planned jobs the run cache (config key ``run_cache``) already holds: those cost nothing.

A job's key is the one its script's ``JobCache`` builds, from Snakemake's own expansion of its rule
(rule ``plan_estimate``): outside Snakemake (``ablate plan``) the cache is not checked. Details:
docs/planner.md, "The model".
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablate.core.planner.planned_jobs import PlannedJob
from ablate.core.reruns import runcache

NOT_CHECKED = "run cache not checked: "  # the start of every note of a job it could not check


def _check(
    cache: Any, spec: dict[str, Any] | None, root: Path, code: Callable[[], str]
) -> str | None:
    """None when the cache holds the job of ``spec``; else why it is forecast at full cost."""
    if spec is None:
        return NOT_CHECKED + (
            "its rule's params and inputs are known inside Snakemake only (the plan rule, "
            "`snakemake <results>/plan.csv`, checks it; `ablate plan` cannot)"
        )
    # Snakemake could not expand its rule (ablate.core.reruns.runcache.job_specs)
    if "error" in spec:
        return NOT_CHECKED + f"its rule could not be expanded ({spec['error']})"
    inputs = [str(root / p) for p in spec["inputs"]]
    missing = [p for p in spec["inputs"] if not os.path.exists(root / p)]
    if missing:
        return NOT_CHECKED + (
            f"its input(s) {', '.join(missing)} do not exist yet, and the key holds their "
            "content: forecast at full cost"
        )
    parts = runcache.key_parts(**dict(spec, inputs=inputs), code=code())
    try:
        if runcache.holds(cache, parts):
            return None
    except Exception as exc:  # noqa: BLE001 (a storage plugin raises its own types)
        return NOT_CHECKED + f"{type(exc).__name__}: {exc}"
    return f"run cache: no entry for its key {runcache.key_of(parts)[:12]} (inputs as they are now)"


def in_cache(
    config: dict[str, Any],
    jobs: list[PlannedJob],
    specs: dict[str, dict[str, Any]] | None,
    root: str | os.PathLike,
    scripts: str | os.PathLike | None,
) -> Callable[[PlannedJob], bool] | None:
    """Whether the run cache holds a job, None without a run cache; a job it does not hold gets a
    note saying why. ``specs``: job name -> its run-cache spec (None outside Snakemake)."""
    cache = config.get("run_cache")
    if not cache:
        return None
    held = set()
    # the package's code hash, taken once for every job (a walk of the package each took 0.05 s)
    code = functools.cache(lambda: runcache.code_hash(scripts))
    for job in jobs:
        if specs is not None and job.id not in specs:
            why = NOT_CHECKED + "no rule of this workflow runs it"
        else:
            why = _check(cache, None if specs is None else specs[job.id], Path(root), code)
        if why is None:
            held.add(job.id)
        else:
            job.notes.append(why)
    return lambda job: job.id in held
