"""bridge_claims: the LatentWire study's claims as supported / not supported / inconclusive / not run."""

from ablate import job_script

job_script.start_light(snakemake, "bridge")  # log, hub switch: before HF imports

from ablate.bridge import claims

claims.write(
    snakemake.params.entries,
    dict(zip(snakemake.params.run_ids, snakemake.input.run_samples, strict=True)),
    dict(zip(snakemake.params.infer_roles, snakemake.input.infer_samples, strict=True)),
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.html,
    snakemake.output.tex,
    embedded=snakemake.params.embedded,
)
