"""recovery_table: results/recovery.csv (+ parquet) from every evaluation's metrics.json and
samples.parquet (paired per-item tests)."""

from ablate import job_script

job_script.start_light(snakemake, "mask")  # log, hub switch: before HF imports

from ablate.mask import recovery

entries = recovery.entries_from_results(
    snakemake.input.metrics,
    snakemake.params.recovery,
    snakemake.input.summaries,
    snakemake.input.samples,
)
df = recovery.build_recovery(entries, alpha=snakemake.params.alpha)
recovery.write_recovery(df, snakemake.output.csv, snakemake.output.parquet, snakemake.output.tex)
print("\n".join(recovery.summary_lines(df)))
