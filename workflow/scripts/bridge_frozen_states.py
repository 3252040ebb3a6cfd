"""bridge_{source,teacher}_states: a frozen model's hidden states of one dataset, computed once.

One process: states.compute here. ``gpu: N`` > 1: N data-parallel processes of states.compute
started by torchrun through the core's launcher (ablate.core.parallel.launch), each extracting
its batches; process 0 writes the cache, byte-identical to one process's.
"""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "bridge")  # this job's own, before any HF import

from ablate.core.runcache import JobCache

job_cache = JobCache(snakemake)  # config key run_cache (off: None): a restored job is done here
if job_cache.restored():
    sys.exit(0)

from ablate.core import gpus

gpus.claim_for(snakemake)  # before torch sees CUDA: this job's own GPU(s)

import torch

torch.set_num_threads(snakemake.threads)
from ablate.bridge import states
from ablate.core import parallel

s = snakemake.params.states
kwargs = dict(
    what=s["what"],
    model_card=snakemake.input[f"{s['role']}_card"],
    train_file=snakemake.input.train,
    eval_file=snakemake.input.eval,
    dataset_kind=s["kind"],
    params=s["params"],
    test_items=s["test_items"],
    out_dir=str(Path(snakemake.output.summary).parent),
    config_slice=s["identity"],
)
granted = int(getattr(snakemake.resources, "gpu", 0) or 0)
if granted > 1:  # the cache does not depend on the process count: the granted GPUs all work
    parallel.launch("ablate.bridge.states:compute", kwargs, granted, snakemake.threads)
else:
    states.compute(**kwargs)
job_cache.store()
