"""bridge_infer: the five baselines on one run's translator, per sample and aggregated."""

from ablate import job_script

# log, hub switch, run cache (a restored job ends here), imports, its GPUs, torch threads
job_cache = job_script.start(snakemake, "bridge", imports=["ablate.bridge.infer"])
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
