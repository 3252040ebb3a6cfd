"""models_recovery: results/recovery.csv (+ parquet, tex) of a multi-model config: every model's
recovery table in one, a `model` column first."""

from ablate import job_script

job_script.start_light(snakemake, "mask")  # log, hub switch: before HF imports

from ablate.mask import recovery
from ablate.mask.models import cross_recovery

df = cross_recovery(dict(zip(snakemake.params.models, snakemake.input.tables)))
recovery.write_recovery(df, snakemake.output.csv, snakemake.output.parquet, snakemake.output.tex)
print("\n".join(recovery.summary_lines(df)))
