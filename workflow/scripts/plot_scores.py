"""plot_scores: per-task headline scores by stage, from the recovery table."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "mask")  # this job's own, before any HF import

from ablate.mask import report

print(report.plot_scores(snakemake.input[0], snakemake.output[0]))
