"""bridge_train: one run (a distinct resolved configuration) trained and evaluated."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

torch.set_num_threads(snakemake.threads)
from ablate.bridge import train

r = snakemake.params.run
train.train_entry(
    source_card=snakemake.input[f"{r['source_role']}_card"],
    target_card=snakemake.input[f"{r['target_role']}_card"],
    train_file=snakemake.input.train,
    eval_file=snakemake.input.eval,
    dataset_kind=r["kind"],
    params=r["params"],
    out_dir=Path(snakemake.output.summary).parent,
    run_id=r["run_id"],
    config_slice=r["identity"],
    where=r["where"],
)
