"""bridge_model (embedded): the role's tiny LM with its own tokenizer, pretrained on the corpus."""

from pathlib import Path

from ablate import job_script

# log, hub switch, run cache (a restored job ends here), imports, its GPUs, torch threads
job_cache = job_script.start(snakemake, "bridge", imports=["ablate.bridge.models"])
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
