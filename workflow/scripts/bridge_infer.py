"""bridge_infer: the five baselines on one run's translator, per sample and aggregated."""

from ablate import job_script

# log, hub switch, run cache (a restored job ends here), imports, its GPUs, torch threads
job_cache = job_script.start(snakemake, "bridge", imports=["ablate.bridge.infer"])
from ablate.bridge import infer
from ablate.bridge import params as bridge_params

spec = bridge_params.RunSpec(**snakemake.params.run)  # the rule's params, as one typed spec
infer.benchmark(
    spec,
    source_card=snakemake.input[f"{spec.source_role}_card"],
    target_card=snakemake.input[f"{spec.target_role}_card"],
    translator_dir=snakemake.input.translator,
    eval_file=snakemake.input.eval,
    out_samples=snakemake.output.samples,
    out_summary=snakemake.output.summary,
)
job_cache.store()
