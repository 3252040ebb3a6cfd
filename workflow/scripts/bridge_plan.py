"""bridge_plan: per job done / stale / to run, hours spent and forecast."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "bridge")  # this job's own, before any HF import

from ablate.bridge import tables

tables.write_plan(
    snakemake.params.jobs,
    snakemake.params.resources,
    snakemake.output.csv,
)
