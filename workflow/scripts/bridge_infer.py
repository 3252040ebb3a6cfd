"""bridge_infer: the five baselines on one run's translator, per sample and aggregated."""

import sys

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
from ablate.bridge import infer

r = snakemake.params.run
infer.benchmark(
    source_card=snakemake.input[f"{r['source_role']}_card"],
    target_card=snakemake.input[f"{r['target_role']}_card"],
    translator_dir=snakemake.input.translator,
    eval_file=snakemake.input.eval,
    dataset_kind=r["kind"],
    params=r["params"],
    out_samples=snakemake.output.samples,
    out_summary=snakemake.output.summary,
    config_slice=r["identity"],
    where=r["where"],
    timed_samples=r["timed_samples"],
)
job_cache.store()
