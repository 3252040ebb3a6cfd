"""bridge_register (pretrained): the hub id or local path and its revision in the role's model card."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "bridge")  # this job's own, before any HF import

from ablate.core import model_card

m = snakemake.params.model["model"]
model_card.register_pretrained(
    snakemake.output.card,
    model=m["path"],
    revision=m["revision"],
    download=m["download"],
    config_slice=snakemake.params.model,
)
