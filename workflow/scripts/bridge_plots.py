"""bridge_plots: accuracy over steps, accuracy against K, the baselines side by side."""

from ablate import job_script

job_script.start_light(snakemake, "bridge")  # log, hub switch: before HF imports

from ablate.bridge import plots

plots.plot_all(
    snakemake.input.summary,
    snakemake.input.curves,
    snakemake.input.infer,
    snakemake.output.curves,
    snakemake.output.k,
    snakemake.output.baselines,
)
