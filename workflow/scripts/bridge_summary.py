"""bridge_summary: one row per grid entry (peak, final, degradation, compression, time, GPU hours)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "bridge")  # this job's own, before any HF import

from ablate.bridge import tables

df = tables.write_summary(
    snakemake.params.entries,
    dict(zip(snakemake.params.run_ids, snakemake.input.summaries, strict=True)),
    snakemake.params.benchmarks,
    snakemake.params.gpus,
    snakemake.output.csv,
    snakemake.output.curves,
)
print(df.to_string(index=False))
