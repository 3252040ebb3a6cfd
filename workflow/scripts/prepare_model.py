"""prepare_model (embedded): Tekken tokenizer, tiny model (mask.model.embedded.family) pretrained
causally, model card."""

import time
from pathlib import Path

from ablate import job_script
from ablate.core.outputs.checkpoint_integrity import CHECKPOINTS_DIR

# log, hub switch, run cache (a restored job ends here, the pretraining's checkpoints of an
# earlier attempt set aside), imports, its GPUs, torch threads
job_cache = job_script.start(
    snakemake,
    "mask",
    imports=["ablate.mask.training.entries"],
    work=[Path(snakemake.output.summary).parent / CHECKPOINTS_DIR],
)
started = time.time()
from ablate.core.outputs import model_card
from ablate.mask import tiny
from ablate.mask.training.entries import pretrain

cfg = snakemake.params.model
emb = cfg["embedded"]
out = snakemake.output
tiny.prepare_tekken_tokenizer(out.tokenizer, emb["tokenizer_file"])
summary = pretrain(
    corpus=snakemake.input.corpus,
    tokenizer_dir=out.tokenizer,
    arch=emb["arch"],
    family=emb["family"],
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
