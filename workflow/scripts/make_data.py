"""make_data: the embedded world (corpus, tasks, SFT pairs) under results/data/."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "mask")  # this job's own, before any HF import

from ablate.mask import embedded

cfg = snakemake.params.data
out = embedded.write_all(Path(snakemake.output.corpus).parent, seed=cfg["seed"], **cfg["embedded"])
print({k: str(v) for k, v in out.items()})
