"""leakage_probe: response loss under the policy vs causal on SFT pairs, plus a future-token check."""

from ablate import job_script

# log, hub switch, run cache (a restored job ends here), imports, its GPUs, torch threads
job_cache = job_script.start(snakemake, "mask", imports=["ablate.mask.leakage"])
from ablate.core.outputs import io, model_card
from ablate.mask import leakage

policy = snakemake.wildcards.policy
model, revision = model_card.locate(model_card.read(snakemake.input.card))
result = leakage.run_probe(
    leakage.ProbeSpec(**snakemake.params.leakage),  # the job's config slice, as one typed spec
    model=model,
    revision=revision,
    data=snakemake.input.sft[0] if snakemake.input.sft else snakemake.params.sft["sft"],
    policy=policy,
    out=snakemake.output.probe,
)
# what the finetunes read: the verdict alone
io.write_json(snakemake.output.verdict, leakage.verdict(result, snakemake.output.probe), indent=2)
job_cache.store()
