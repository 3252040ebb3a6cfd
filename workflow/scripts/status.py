"""status: STATUS.md and the report's status and provenance pages (ablate.core.status_report)."""

from ablate import job_script

job_script.log_only(snakemake)

from ablate.core.status_report import write_all

write_all(snakemake.config, snakemake.output.md, snakemake.output.html, snakemake.output.provenance)
