"""mask_claims: results/claims/mask.csv (+ .md, .html) from the evaluations' metrics and samples."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "mask")  # this job's own, before any HF import

from ablate.core.claims import write_claims
from ablate.mask.claims import claims_table

df = claims_table(
    snakemake.params.claims,
    snakemake.params.ablated_policy,
    snakemake.params.tasks,
    snakemake.input.metrics,
    snakemake.input.samples,
)
write_claims(df, snakemake.output.csv, snakemake.output.md, snakemake.output.html)
print(df[["claim", "verdict", "evidence"]].to_string(index=False))
