"""make_data: the embedded world (corpus, tasks, SFT pairs) under results/data/."""

from pathlib import Path

from ablate import job_script

job_script.start_light(snakemake, "mask")  # log, hub switch: before HF imports

from ablate.mask import embedded

cfg = snakemake.params.data
out = embedded.write_all(Path(snakemake.output.corpus).parent, seed=cfg["seed"], **cfg["embedded"])
print({k: str(v) for k, v in out.items()})
