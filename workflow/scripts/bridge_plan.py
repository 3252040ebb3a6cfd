"""bridge_plan: per job done / stale / to run, hours spent and forecast."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate.bridge import plan_table

plan_table.write_plan(
    snakemake.params.jobs,
    snakemake.params.resources,
    snakemake.output.csv,
)
