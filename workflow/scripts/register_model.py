"""prepare_model (pretrained): record the hub id or local path and its revision in the model card."""

from ablate import job_script

job_script.start_light(snakemake, "mask")  # log, hub switch: before HF imports

from ablate.core.outputs import model_card
from ablate.mask import families

cfg = snakemake.params.model
card = model_card.register_pretrained(
    snakemake.output.card,
    model=cfg["path"],
    revision=cfg["revision"],
    download=cfg["download"],
    config_slice=cfg,
)
# The model's family, now that its config.json is here (downloaded, or in the local cache) when
# the workflow's parse could not read it: an unproven one is refused before any GPU job.
found = families.read_model_config(card["path"], card["revision"])
if found is not None:
    families.check_config(found[0], what=f"mask.model.path {cfg['path']} ({found[1]})")
