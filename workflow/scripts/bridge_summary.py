"""bridge_summary: one row per grid entry (peak, final, degradation, compression, time, GPU hours)."""

from ablate import job_script

job_script.start_light(snakemake, "bridge")  # log, hub switch: before HF imports

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
