"""bridge_train: one run (a distinct resolved configuration) trained and evaluated.

One process: train_entry here. ``gpu: N`` > 1: N data-parallel processes of train_entry started by
torchrun through the core's launcher (ablate.job_script.run_entry).
"""

from pathlib import Path

from ablate import job_script
from ablate.core.outputs.checkpoint_integrity import CHECKPOINTS_DIR

# log, hub switch, run cache (a restored job ends here, its checkpoints of an earlier attempt
# set aside), imports, its GPUs, torch threads
job_cache = job_script.start(
    snakemake,
    "bridge",
    imports=["ablate.bridge.training.entries"],
    work=[Path(snakemake.output.summary).parent / CHECKPOINTS_DIR],
)
from ablate.bridge import params as bridge_params

r = snakemake.params.run
spec = bridge_params.RunSpec(**r)  # the rule's params, as one typed spec
kwargs = dict(
    spec=spec,
    source_card=snakemake.input[f"{spec.source_role}_card"],
    target_card=snakemake.input[f"{spec.target_role}_card"],
    train_file=snakemake.input.train,
    eval_file=snakemake.input.eval,
    out_dir=str(Path(snakemake.output.summary).parent),
    # the caches this run reads (rules/bridge/common.smk: bridge_train_inputs): their folders
    states={
        what: str(Path(snakemake.input[f"{what}_states"]).parent)
        for what in ("source", "teacher")
        if f"{what}_states" in snakemake.input.keys()
    },
)
job_script.run_entry(
    snakemake,
    "ablate.bridge.training.entries:train_entry",
    kwargs,
    processes=spec.processes,
    key="bridge.resources.train.gpu",
)
job_cache.store()
