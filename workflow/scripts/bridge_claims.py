"""bridge_claims: seed 004's claims as supported / not supported / inconclusive / not run."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate import studies

studies.hub_switch(snakemake.config, "bridge")  # this job's own, before any HF import

from ablate.bridge import claims

claims.write(
    snakemake.params.entries,
    dict(zip(snakemake.params.run_ids, snakemake.input.run_samples, strict=True)),
    dict(zip(snakemake.params.infer_roles, snakemake.input.infer_samples, strict=True)),
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.html,
    embedded=snakemake.params.embedded,
)
