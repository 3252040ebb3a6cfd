"""finetune (stages 3 and 5): full-weight SFT of the base model under the variant's policy."""

import json
from pathlib import Path

from ablate import job_script
from ablate.core.outputs.checkpoint_integrity import CHECKPOINTS_DIR
from ablate.core.reports import tracking

out_dir = Path(snakemake.output.summary).parent


def log_run():
    """The MLflow run of the finished record (a restored one too)."""
    tracking.log_record(
        snakemake.output.summary,
        "finetune",
        f"finetune/{snakemake.wildcards.variant}",
        snakemake.config["tracking"],
        snakemake.config["results"],
    )


# log, hub switch, run cache (a restored job ends here, with its TensorBoard events and its
# MLflow run; checkpoints of an earlier attempt set aside), imports, its GPUs, torch threads
job_cache = job_script.start(
    snakemake,
    "mask",
    imports=["ablate.mask.training.entries"],
    side_outputs=[out_dir / tracking.TENSORBOARD_DIR],
    after_restore=log_run,
    work=[out_dir / CHECKPOINTS_DIR],
)
from ablate.core.outputs import model_card
from ablate.mask.training.entries import FinetuneSpec

# the job's config slice (its params resolved when the config was parsed), as one typed spec
spec = FinetuneSpec(**snakemake.params.finetune)
# tracking is read from the config, not params: switching it on or off reruns nothing
track = snakemake.config["tracking"]
tracking.check(track)
model, revision = model_card.locate(model_card.read(snakemake.input.card))
kwargs = dict(
    spec=spec,
    model_path=model,
    revision=revision,
    data=snakemake.input.sft[0] if snakemake.input.sft else snakemake.params.sft["sft"],
    out_dir=str(out_dir),
    probe_result=json.loads(Path(snakemake.input.probe).read_text()),
)
reporters = dict(
    call="ablate.core.reports.tracking:reporters", kwargs=dict(tracking=track, out_dir=str(out_dir))
)
# data-parallel over the job's GPUs when it has several, the same global batch (docs/training.md)
job_script.run_entry(
    snakemake, "ablate.mask.training.entries:finetune", kwargs, reporters=reporters
)
log_run()
job_cache.store()
