"""plot_loss_curves: pretraining and finetune loss curves from the training summaries."""

from ablate import job_script

job_script.start_light(snakemake, "mask")  # log, hub switch: before HF imports

from ablate.mask import report

summaries = [*snakemake.input.pretrain, *snakemake.input.finetunes]
print(report.plot_loss_curves(summaries, snakemake.output[0]))
