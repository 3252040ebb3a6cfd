"""recovery_table: results/recovery.csv (+ parquet) from every evaluation's metrics.json and
samples.parquet (paired per-item tests)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "mask")  # this job's own, before any HF import

from ablate.mask import recovery

entries = recovery.entries_from_results(
    snakemake.input.metrics,
    snakemake.params.recovery,
    snakemake.input.summaries,
    snakemake.input.samples,
)
df = recovery.build_recovery(entries, alpha=snakemake.params.alpha)
recovery.write_recovery(df, snakemake.output.csv, snakemake.output.parquet)
print("\n".join(recovery.summary_lines(df)))
