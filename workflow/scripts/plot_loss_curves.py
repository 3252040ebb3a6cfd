"""plot_loss_curves: pretraining and finetune loss curves from the training summaries."""

from ablate import job_script

# log, hub switch, run cache (a restored job ends here: its outputs are of its inputs)
job_cache = job_script.start_table(snakemake, "mask")

from ablate.mask import report

summaries = [*snakemake.input.pretrain, *snakemake.input.finetunes]
print(report.plot_loss_curves(summaries, snakemake.output[0]))
job_cache.store()
