"""prepare_model (pretrained): record the hub id or local path and its revision in the model card."""

from ablate import job_script

job_script.start_light(snakemake, "mask")  # log, hub switch: before HF imports

from ablate.core import model_card

cfg = snakemake.params.model
model_card.register_pretrained(
    snakemake.output.card,
    model=cfg["path"],
    revision=cfg["revision"],
    download=cfg["download"],
    config_slice=cfg,
)
