"""bridge_{source,teacher}_states: a frozen model's hidden states of one dataset, computed once.

One process: states.compute here. ``gpu: N`` > 1: N data-parallel processes of states.compute
started by torchrun through the core's launcher (ablate.core.execution.parallel.launch), each
extracting its batches; process 0 writes the cache, byte-identical to one process's.
"""

from pathlib import Path

from ablate import job_script

# log, hub switch, run cache (a restored job ends here), imports, its GPUs, torch threads
job_cache = job_script.start(snakemake, "bridge", imports=["ablate.bridge.states"])
from ablate.bridge import states
from ablate.core.execution import parallel

spec = states.StatesSpec(**snakemake.params.states)  # the rule's params, as one typed spec
kwargs = dict(
    spec=spec,
    model_card=snakemake.input[f"{spec.role}_card"],
    train_file=snakemake.input.train,
    eval_file=snakemake.input.eval,
    out_dir=str(Path(snakemake.output.summary).parent),
)
granted = int(getattr(snakemake.resources, "gpu", 0) or 0)
if granted > 1:  # the cache does not depend on the process count: the granted GPUs all work
    parallel.launch("ablate.bridge.states:compute", kwargs, granted, snakemake.threads)
else:
    states.compute(**kwargs)
job_cache.store()
