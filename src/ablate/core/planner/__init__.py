"""Runtime and cost planner: every planned job x every setup, forecast before a run, compared after.

The jobs come from each study's job list (:mod:`ablate.core.planner.planned_jobs`: each study's
``plan`` module, found through :mod:`ablate.studies`); for each job and each setup (GPU model x
count, ``plan.setups``) the planner predicts the wall time and the cost and says where every number
came from (docs/planner.md). A forecast never stops a study: a missing or unreadable input is a
note on the rows it touches.

Its modules: docs/design.md's module map (``ablate map``).

The names below are importable from the package itself (``planner.make_plan``); they load on
first use, so ``ablate.core.planner.files`` stays cheap to import at Snakefile parse time.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "make_plan": "plan",
    "Plan": "plan",
    "write_plan": "output",
    "summary_lines": "output",
    "failed_plan": "output",
    "load_config": "inputs",
    "PlanError": "inputs",
    "COLUMNS": "estimate",
    "TOTAL": "totals",
    "ACTUAL_COLUMNS": "actuals",
    "NOT_RUN": "actuals",
    "main": "cli",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
