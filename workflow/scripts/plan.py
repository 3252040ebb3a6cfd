"""plan_estimate / plan: the runtime and cost table (ablate.core.planner, docs/planner.md).

With an ``estimate`` input (rule plan) the frozen forecast gains the actual times of the jobs
that have finished (every job in a full run, any number when the plan is asked for alone) and a
status per row; without one (rule plan_estimate) it is the forecast itself. A forecast never
stops a study: whatever fails is a note in the table and a warning in this log.
"""

import sys

from ablate import job_script

job_script.log_only(
    snakemake,
    remade=(
        "its actual times are the finished jobs' benchmark files, which are not its inputs"
        if "estimate" in snakemake.input.keys()
        else "the forecast counts the jobs the run cache holds now"
    ),
)

import logging
import traceback

import pandas as pd

from ablate.core import planner

logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
try:
    frozen = pd.read_csv(snakemake.input.estimate) if "estimate" in snakemake.input.keys() else None
    # run_cache from the config, as the jobs read it: switching the cache reruns no plan
    config = dict(snakemake.params.plan, run_cache=snakemake.config.get("run_cache"))
    plan = planner.make_plan(
        config,
        actuals=frozen is not None,
        frozen=frozen,
        # plan_estimate: each job's run-cache spec (rules/plan.smk), the key's code folder
        cache_jobs=dict(snakemake.params.items()).get("cache_jobs"),
        scripts=snakemake.scriptdir,
    )
except Exception as exc:  # the planner itself failed: the table says so, the study goes on
    traceback.print_exc()
    plan = planner.failed_plan(f"the planner failed: {type(exc).__name__}: {exc} (see the log)")
planner.write_plan(plan, snakemake.output.csv, snakemake.output.html)
print("\n".join(planner.summary_lines(plan)))
