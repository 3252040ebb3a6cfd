"""bridge_claims: seed 004's claims as supported / not supported / inconclusive / not run."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate.bridge import claims

claims.write(
    snakemake.params.entries,
    snakemake.params.infer,
    snakemake.params.results,
    snakemake.output.csv,
    snakemake.output.md,
)
