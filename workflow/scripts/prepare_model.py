"""prepare_model (embedded): Tekken tokenizer, tiny Ministral-3 pretrained causally, model card."""

import sys
import time
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "mask")  # this job's own, before any HF import

from ablate.core.runcache import JobCache

job_cache = JobCache(snakemake)  # config key run_cache (off: None): a restored job is done here
if job_cache.restored():
    sys.exit(0)
started = time.time()

from ablate.core import gpus

gpus.claim_for(snakemake)  # before torch sees CUDA: this job's own GPU(s)

import torch

torch.set_num_threads(snakemake.threads)
from ablate.core import model_card
from ablate.mask import tiny
from ablate.mask.training.run import pretrain

cfg = snakemake.params.model
emb = cfg["embedded"]
out = snakemake.output
tiny.prepare_tekken_tokenizer(out.tokenizer, emb["tokenizer_file"])
summary = pretrain(
    corpus=snakemake.input.corpus,
    tokenizer_dir=out.tokenizer,
    arch=emb["arch"],
    params=emb["pretrain"],
    out_dir=Path(out.summary).parent,
    config_slice=cfg,
)
model_card.write(
    out.card,
    source="embedded",
    model=out.model,
    tokenizer=out.tokenizer,
    config_slice=cfg,
    extra={"pretrain_run_id": summary["provenance"]["run_id"]},
    started=started,
)
job_cache.store()
