"""bridge_data: the embedded world or the hub datasets as jsonl, checked, with a provenance record."""

from pathlib import Path

from ablate import job_script

job_script.start_light(snakemake, "bridge")  # log, hub switch: before HF imports

from ablate.bridge import data

data.write(
    snakemake.params.data,
    snakemake.params.datasets,
    Path(snakemake.output.provenance).parent,
    snakemake.output.provenance,
)
