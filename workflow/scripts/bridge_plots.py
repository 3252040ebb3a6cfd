"""bridge_plots: accuracy over steps, accuracy against K, the baselines side by side."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "bridge")  # this job's own, before any HF import

from ablate.bridge import plots

plots.plot_all(
    snakemake.input.summary,
    snakemake.input.curves,
    snakemake.input.infer,
    snakemake.output.curves,
    snakemake.output.k,
    snakemake.output.baselines,
)
