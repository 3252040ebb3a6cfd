"""plan_estimate / plan: the runtime and cost table (ablate.core.planner, docs/planner.md).

With an ``estimate`` input (rule plan) the frozen forecast gains the actual times of the stages
that have finished (every stage in a full run, any number when the plan is asked for alone) and a
status per row; without one (rule plan_estimate) it is the forecast itself.
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from ablate.core import planner

p = snakemake.params.plan
frozen = pd.read_csv(snakemake.input.estimate) if "estimate" in snakemake.input.keys() else None
plan = planner.make_plan(
    p["config"],
    actuals=frozen is not None,
    frozen=frozen,
    variants=p["variants"],
    outputs=p["outputs"],
    benchmarks=p["benchmarks"],
)
planner.write_plan(plan, snakemake.output.csv, snakemake.output.html)
print("\n".join(planner.summary_lines(plan)))
