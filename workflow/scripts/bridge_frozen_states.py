"""bridge_{source,teacher}_states: a frozen model's hidden states of one dataset, computed once."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate.core.runcache import JobCache

job_cache = JobCache(snakemake)  # config key run_cache (off: None): a restored job is done here
if job_cache.restored():
    sys.exit(0)

from ablate.core import gpus

gpus.claim_for(snakemake)  # before torch sees CUDA: this job's own GPU(s)

import torch

torch.set_num_threads(snakemake.threads)
from ablate.bridge import states

s = snakemake.params.states
states.compute(
    what=s["what"],
    model_card=snakemake.input[f"{s['role']}_card"],
    train_file=snakemake.input.train,
    eval_file=snakemake.input.eval,
    dataset_kind=s["kind"],
    params=s["params"],
    test_items=s["test_items"],
    out_dir=Path(snakemake.output.summary).parent,
    config_slice=s["identity"],
)
job_cache.store()
