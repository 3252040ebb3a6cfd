"""status: STATUS.md and the report's status and provenance pages (ablate.core.status_report)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ablate.core.status_report import write_all

write_all(snakemake.config, snakemake.output.md, snakemake.output.html, snakemake.output.provenance)
