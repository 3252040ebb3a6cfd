"""leakage_probe: response loss under the policy vs causal on SFT pairs, plus a future-token check."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "mask")  # this job's own, before any HF import

from ablate.core.runcache import JobCache

job_cache = JobCache(snakemake)  # config key run_cache (off: None): a restored job is done here
if job_cache.restored():
    sys.exit(0)

from ablate.core import gpus

gpus.claim_for(snakemake)  # before torch sees CUDA: this job's own GPU(s)

import torch

torch.set_num_threads(snakemake.threads)
from ablate.core import model_card
from ablate.mask import leakage

cfg = snakemake.params.leakage
policy = snakemake.wildcards.policy
model, revision = model_card.locate(model_card.read(snakemake.input.card))
leakage.run_probe(
    model=model,
    revision=revision,
    data=snakemake.input.sft[0] if snakemake.input.sft else snakemake.params.sft["sft"],
    policy=policy,
    n=cfg["n_pairs"],
    max_seq_len=cfg["max_seq_len"],
    batch_size=cfg["batch_size"],
    dtype=cfg["dtype"],
    threshold=cfg["threshold"],
    out=snakemake.output[0],
    config_slice={**cfg, "policy": policy},
)
job_cache.store()
