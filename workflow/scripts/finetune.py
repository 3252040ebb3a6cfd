"""finetune (stages 3 and 5): full-weight SFT of the base model under the variant's policy."""

import json
from pathlib import Path

from ablate import job_script

# log, hub switch, run cache (a restored job ends here), imports, its GPUs, torch threads
job_cache = job_script.start(snakemake, "mask", imports=["ablate.mask.training.run"])
from ablate.core import model_card, parallel, tracking
from ablate.mask.training.run import finetune

cfg = snakemake.params.finetune
# tracking is read from the config, not params: switching it on or off reruns nothing
track = snakemake.config["tracking"]
tracking.check(track)
out_dir = Path(snakemake.output.summary).parent
model, revision = model_card.locate(model_card.read(snakemake.input.card))
kwargs = dict(
    model_path=model,
    revision=revision,
    data=snakemake.input.sft[0] if snakemake.input.sft else snakemake.params.sft["sft"],
    policy=cfg["policy"],
    params=cfg["params"],
    out_dir=str(out_dir),
    probe_result=json.loads(Path(snakemake.input.probe).read_text()),
    allow_leakage=cfg["allow_leakage"],
    config_slice=cfg,
)
callbacks = dict(
    call="ablate.core.tracking:trainer_callbacks", kwargs=dict(tracking=track, out_dir=str(out_dir))
)
gpus_granted = int(getattr(snakemake.resources, "gpu", 0) or 0)
if gpus_granted > 1:  # data-parallel over the job's GPUs, the same global batch (docs/training.md)
    parallel.launch(
        "ablate.mask.training.run:finetune",
        kwargs,
        gpus_granted,
        snakemake.threads,
        callbacks=callbacks,
    )
else:
    finetune(**kwargs, callbacks=parallel.resolve(callbacks["call"])(**callbacks["kwargs"]))
tracking.log_record(
    snakemake.output.summary,
    "finetune",
    f"finetune/{snakemake.wildcards.variant}",
    track,
    snakemake.config["results"],
)
job_cache.store()
