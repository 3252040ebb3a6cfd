"""plot_scores: per-task headline scores by stage, from the recovery table."""

from ablate import job_script

job_script.start_light(snakemake, "mask")  # log, hub switch: before HF imports

from ablate.mask import report

print(report.plot_scores(snakemake.input[0], snakemake.output[0]))
