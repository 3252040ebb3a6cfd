"""prepare_model (pretrained): record the hub id or local path and its revision in the model card."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "mask")  # this job's own, before any HF import

from ablate.core import model_card

cfg = snakemake.params.model
model_card.register_pretrained(
    snakemake.output.card,
    model=cfg["path"],
    revision=cfg["revision"],
    download=cfg["download"],
    config_slice=cfg,
)
