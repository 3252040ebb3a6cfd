"""status: STATUS.md and the report's status and provenance pages
(ablate.core.reports.status_report), and its runs page: every results tree side by side
(ablate.core.reports.runs)."""

from ablate import job_script

job_script.log_only(
    snakemake, remade="STATUS is every job's state now, which no run cache key holds"
)

from ablate.core.reports import runs
from ablate.core.reports.status_report import write_all

out = snakemake.output
rows = write_all(snakemake.config, out.md, out.html, out.provenance)
runs.write_page(snakemake.config, rows, out.runs)
