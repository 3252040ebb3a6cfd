"""plot_scores: per-task headline scores by stage, from the recovery table."""

from ablate import job_script

# log, hub switch, run cache (a restored job ends here: its outputs are of its inputs)
job_cache = job_script.start_table(snakemake, "mask")

from ablate.mask import report

print(report.plot_scores(snakemake.input[0], snakemake.output[0]))
job_cache.store()
