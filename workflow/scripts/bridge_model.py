"""bridge_model (embedded): the role's tiny LM with its own tokenizer, pretrained on the corpus."""

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
from ablate.bridge import models

m = snakemake.params.model["model"]
models.prepare_model(
    family=m["family"],
    arch=m["arch"],
    pretrain=m["pretrain"],
    corpus=snakemake.input.corpus,
    out_dir=Path(snakemake.output.card).parent,
    config_slice=snakemake.params.model,
)
job_cache.store()
