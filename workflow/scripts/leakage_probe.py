"""leakage_probe: response loss under the policy vs causal on SFT pairs, plus a future-token check."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

torch.set_num_threads(snakemake.threads)
from ablate.core import model_card
from ablate.mask import leakage

cfg = snakemake.params.leakage
model, revision = model_card.locate(model_card.read(snakemake.input.card))
argv = [
    "--model",
    model,
    "--data",
    snakemake.input.sft[0] if snakemake.input.sft else snakemake.params.sft["sft"],
    "--policy",
    snakemake.wildcards.policy,
    "--n",
    str(cfg["n_pairs"]),
    "--max-seq-len",
    str(cfg["max_seq_len"]),
    "--batch-size",
    str(cfg["batch_size"]),
    "--dtype",
    cfg["dtype"],
    "--out",
    snakemake.output[0],
]
if revision is not None:
    argv += ["--revision", revision]
if cfg["threshold"] is not None:
    argv += ["--threshold", str(cfg["threshold"])]
sys.exit(leakage.main(argv))
