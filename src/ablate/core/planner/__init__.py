"""Runtime and cost planner: every planned job x every setup, forecast before a run, compared after.

The jobs come from each study's job list (:mod:`ablate.core.planner.planned_jobs`: each study's
``plan`` module, found through :mod:`ablate.studies`); for each job and each setup (GPU model x
count, ``plan.setups``) the planner predicts the wall time and the cost and says where every number
came from (docs/planner.md). A forecast never stops a study: a missing or unreadable input is a
note on the rows it touches.

Modules, one concern each:

====================  ============================================================================
``inputs``            the config (schema defaults filled), setups, the measurements file
``planned_jobs``      PlannedJob / StudyPlan: what a study hands the planner
``model_size``        model size (parameters from a config.json, offline)
``throughput``        tokens/s per GPU: measured, scaled by peak FLOP/s, or the FLOP estimate
``prices``            the user's price, live Vast offers, the offers snapshot
``history``           past runs: records, benchmark files, the throughput they measured
``overheads``         start-up, load, saves, boot and shipping
``memory_need``       memory per GPU: the one-GPU recipe, the data-parallel ones over N GPUs,
                      activations
``interruptions``     expected restarts on an interruptible (bid) instance
``estimate``          the forecast table (COLUMNS)
``per_gpus``          a data-parallel job's estimate on 1, 2, 4 and 8 GPUs (the plan's summary)
``cached``            which jobs the run cache holds (zero cost; config ``run_cache``)
``schedule``          jobs side by side on one multi-GPU machine (which job reads which)
``actuals``           actual times, error and status of finished jobs
``plan``              make_plan: the above for one config
``output``            summary lines, plan.csv and its HTML view
``totals``            a setup's total as text, for the summary and STATUS (import-light)
``cli``               ``ablate plan``
``files``             the planner's file names under a results folder (import-light)
====================  ============================================================================

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
