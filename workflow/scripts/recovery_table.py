"""recovery_table: results/recovery.csv (+ parquet) from every evaluation's metrics.json."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate.mask import recovery

entries = recovery.entries_from_results(
    snakemake.input.metrics,
    snakemake.params.recovery,
    snakemake.input.summaries,
)
df = recovery.build_recovery(entries)
recovery.write_recovery(df, snakemake.output.csv, snakemake.output.parquet)
print("\n".join(recovery.summary_lines(df)))
