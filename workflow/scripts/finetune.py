"""finetune (stages 3 and 5): full-weight SFT of the base model under the variant's policy."""

import json
import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate.core import gpus

gpus.claim_for(snakemake)  # before torch sees CUDA: this job's own GPU(s)

import torch

torch.set_num_threads(snakemake.threads)
from ablate.core import model_card, tracking
from ablate.mask.training.run import finetune

cfg = snakemake.params.finetune
# tracking is read from the config, not params: switching it on or off reruns nothing
track = snakemake.config["tracking"]
tracking.check(track)
out_dir = Path(snakemake.output.summary).parent
model, revision = model_card.locate(model_card.read(snakemake.input.card))
finetune(
    model_path=model,
    revision=revision,
    data=snakemake.input.sft[0] if snakemake.input.sft else snakemake.params.sft["sft"],
    policy=cfg["policy"],
    params=cfg["params"],
    out_dir=out_dir,
    probe_result=json.loads(Path(snakemake.input.probe).read_text()),
    allow_leakage=cfg["allow_leakage"],
    config_slice=cfg,
    callbacks=tracking.trainer_callbacks(track, out_dir),
)
tracking.log_record(
    snakemake.output.summary,
    "finetune",
    f"finetune/{snakemake.wildcards.variant}",
    track,
    snakemake.config["results"],
)
