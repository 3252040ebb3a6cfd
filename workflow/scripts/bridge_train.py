"""bridge_train: one run (a distinct resolved configuration) trained and evaluated.

One process: train_entry here. ``gpu: N`` > 1: N data-parallel processes of train_entry started by
torchrun through the core's launcher (ablate.core.parallel.launch).
"""

from pathlib import Path

from ablate import job_script

# log, hub switch, run cache (a restored job ends here), imports, its GPUs, torch threads
job_cache = job_script.start(snakemake, "bridge", imports=["ablate.bridge.train"])
from ablate.bridge import params as bridge_params
from ablate.bridge import train
from ablate.core import parallel

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
granted = int(getattr(snakemake.resources, "gpu", 0) or 0)
if spec.processes > 1 and granted != spec.processes:
    # the global batch (and the run id) counts the configured processes: never fewer silently
    raise RuntimeError(
        f"bridge.resources.train.gpu asks {spec.processes} data-parallel processes but this job "
        f"was granted gpu={granted}: a `resources: gpu` limit of the profile or command line caps "
        f"it (the vast profile's is 1: add --resources gpu={spec.processes})"
    )
if spec.processes == 1:
    train.train_entry(**kwargs)
else:
    parallel.launch("ablate.bridge.train:train_entry", kwargs, spec.processes, snakemake.threads)
job_cache.store()
