"""leakage_probe: response loss under the policy vs causal on SFT pairs, plus a future-token check."""

from ablate import job_script

# log, hub switch, run cache (a restored job ends here), imports, its GPUs, torch threads
job_cache = job_script.start(snakemake, "mask", imports=["ablate.mask.leakage"])
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
    config_slice=cfg,
)
job_cache.store()
