"""The plan of one config: estimate every (setup, planned job); add what finished jobs took."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.planner import per_gpus
from ablate.core.planner.actuals import ACTUAL_COLUMNS, UNPLANNED, add_actuals, collect_actuals
from ablate.core.planner.cached import in_cache
from ablate.core.planner.estimate import COLUMNS, estimate
from ablate.core.planner.files import ON_GPU_COUNTS
from ablate.core.planner.history import pipeline_measurements
from ablate.core.planner.inputs import load_reference, log, parse_setups
from ablate.core.planner.planned_jobs import study_plans
from ablate.core.planner.prices import resolve_prices


@dataclass
class Plan:
    table: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def make_plan(
    config: dict[str, Any],
    *,
    root: str | os.PathLike = ".",
    actuals: bool = True,
    frozen: pd.DataFrame | None = None,
    cache_jobs: dict[str, dict[str, Any]] | None = None,
    scripts: str | os.PathLike | None = None,
) -> Plan:
    """The plan of a schema-validated config (defaults filled, as the rules get it).

    ``root``: the folder holding the config's results folder. ``frozen``: an estimate written
    before the run (rule ``plan_estimate``), which the actuals are added to: a fresh one would
    already have learnt from the run itself. ``cache_jobs``, ``scripts``: :func:`~.cached.in_cache`.
    """
    plan, root = config["plan"], Path(root)
    ref = load_reference(plan["measurements"])
    plans = study_plans(config, ref, root)
    jobs = [j for sp in plans for j in sp.jobs]
    # one plan: its model and size; several (a study of several models): each model's size
    several = len(plans) > 1
    info = {
        "model": "; ".join(
            sp.model + (f" ({sp.params / 1e9:.4g} B)" if several and sp.params else "")
            for sp in plans
        )
        or "no study planned",
        "params": plans[0].params if len(plans) == 1 else None,
        "several_models": several,
        "params_source": "; ".join(sp.params_source for sp in plans),
        "measurements_file": ref.path,
        "problems": [ref.problem] if ref.problem else [],
    }
    missing = [
        c for c in COLUMNS if c not in ACTUAL_COLUMNS and c not in getattr(frozen, "columns", [])
    ]
    if frozen is not None and missing:
        why = f"the frozen estimate lacks the column(s) {', '.join(missing)}: estimated afresh"
        log.warning("planner: %s", why)
        info["problems"].append(why)
        frozen = None
    setups = parse_setups(plan, ref)
    ms = pipeline_measurements(plans, root, ref, plan) + ref.measurements
    if frozen is None:
        held = in_cache(config, jobs, cache_jobs, root, scripts)
        table = estimate(jobs, setups, resolve_prices(setups, plan), ref, ms, plan, held)
        table[ON_GPU_COUNTS] = table["job"].map(per_gpus.gpu_counts(jobs, setups, ref, ms, plan))
    else:
        # only its forecast counts: actuals of another run (a plan.csv passed as --frozen) go
        table = frozen[frozen["note"] != UNPLANNED].reindex(columns=COLUMNS).reset_index(drop=True)
        table[ACTUAL_COLUMNS] = None
    if actuals:
        table = add_actuals(table, collect_actuals(jobs, root, ref))
    info["prices"] = sorted({str(x) for x in table["price_source"].dropna()})
    info["captured_at"] = sorted({str(x) for x in table["prices_captured_at"].dropna()})
    return Plan(table, info)
