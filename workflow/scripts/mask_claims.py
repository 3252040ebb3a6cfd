"""mask_claims: results/claims/mask.csv (+ .md, .html) from the evaluations' metrics and samples."""

from ablate import job_script

# log, hub switch, run cache (a restored job ends here: its outputs are of its inputs)
job_cache = job_script.start_table(snakemake, "mask")

from ablate.core.reports.claims import write_claims
from ablate.mask.claims import claims_table, protocol_note

df = claims_table(
    snakemake.params.claims,
    snakemake.params.ablated_policy,
    snakemake.params.tasks,
    snakemake.input.metrics,
    snakemake.input.samples,
)
# under the table: which scoring and SFT format produced its numbers
note = "\n\n" + protocol_note(snakemake.input.metrics, snakemake.params.sft_formats) + "\n"
write_claims(
    df, snakemake.output.csv, snakemake.output.md, snakemake.output.html, note, snakemake.output.tex
)
print(df[["claim", "verdict", "evidence"]].to_string(index=False))
job_cache.store()
