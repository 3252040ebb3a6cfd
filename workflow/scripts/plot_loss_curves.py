"""plot_loss_curves: pretraining and finetune loss curves from the training summaries."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "mask")  # this job's own, before any HF import

from ablate.mask import report

summaries = [*snakemake.input.pretrain, *snakemake.input.finetunes]
print(report.plot_loss_curves(summaries, snakemake.output[0]))
