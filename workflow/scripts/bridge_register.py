"""bridge_register (pretrained): the hub id or local path and its revision in the role's model card."""

from ablate import job_script

job_script.start_light(snakemake, "bridge")  # log, hub switch: before HF imports

from ablate.core.outputs import model_card

p = snakemake.params.model
m = p["model"]
model_card.register_pretrained(
    snakemake.output.card,
    model=m["path"],
    revision=m["revision"],  # a hub model's: the commit the run ids name (pins.pin_revisions)
    download=m["download"],
    config_slice=p,
    requested={"revision": p["requested_revision"]} if "requested_revision" in p else None,
)
