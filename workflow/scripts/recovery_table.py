"""recovery_table: results/recovery.csv (+ parquet) from every evaluation's metrics.json and
samples.parquet (paired per-item tests)."""

from ablate import job_script

# log, hub switch, run cache (a restored job ends here: its outputs are of its inputs)
job_cache = job_script.start_table(snakemake, "mask")

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
job_cache.store()
