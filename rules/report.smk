# Snakemake's report, as this pipeline shows it (ablate.upstream.smk): each rule once in the
# rule graph (ablate.core.reports.report_graph), and the landing page (workflow/report/workflow.rst) with
# the score plot embedded, not linked.
from ablate.upstream import smk

smk.patch_report()
