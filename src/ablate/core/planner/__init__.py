"""Runtime and cost planner: every planned job x every setup, forecast before a run, compared after.

The model and every column: docs/planner.md. A forecast never stops a study: a missing or
unreadable input is a note on the rows it touches. The names below load on first use, so
``ablate.core.planner.files`` stays cheap to import at Snakefile parse time.
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
