"""models_claims: results/claims/mask.csv (+ .md, .html, .tex) of a multi-model config: each
claim counted over the models ("holds in k of n models"), each model's verdict beside it."""

from ablate import job_script

job_script.start_light(snakemake, "mask")  # log, hub switch: before HF imports

from ablate.core.reports.claims import write_claims
from ablate.mask.models import cross_claims

df = cross_claims(dict(zip(snakemake.params.models, snakemake.input.tables)))
note = "\n\nEach model's own table, with its protocol: " + ", ".join(snakemake.input.tables) + "\n"
write_claims(
    df, snakemake.output.csv, snakemake.output.md, snakemake.output.html, note, snakemake.output.tex
)
print(df[["claim", "verdict", "evidence"]].to_string(index=False))
