"""bridge_data: the embedded world or the hub datasets as jsonl, checked, with a provenance record."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "bridge")  # this job's own, before any HF import

from ablate.bridge import data

data.write(
    snakemake.params.data,
    snakemake.params.datasets,
    Path(snakemake.output.provenance).parent,
    snakemake.output.provenance,
)
