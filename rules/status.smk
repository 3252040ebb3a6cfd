# STATUS.md (ablate.core.reports.status), for every study of the run: per job done / running / stale (the
# changed config key) / to run, wall time, GPU hours, numbers, artifacts; the forecast of what
# remains. A full run writes it last (its inputs are the studies' targets) with the report's
# views of it: the status page, every record's provenance block next to its numbers, and every
# results tree of the working directory beside this one (`ablate runs`). Asked
# for alone (`snakemake -c1 --nolock -f results/STATUS.md`) it runs no other job; `ablate status`
# writes the same file without Snakemake, cheap enough to run every minute during a run.
from ablate.core.reports.status import STATUS_FILE

STATUS_TARGET = out(STATUS_FILE)
STATUS_PRODUCTS = {"status", STATUS_TARGET}


localrules:
    status,


rule status:
    input:
        lambda wc: (
            []
            if asked_alone(STATUS_PRODUCTS, STATUS_TARGET, STUDY_TARGETS)
            else STUDY_TARGETS
        ),
    output:
        md=STATUS_TARGET,
        html=report(
            out("status/status.html"),
            caption="../workflow/report/status.rst",
            category="Status",
            labels={"page": "status"},
        ),
        provenance=report(
            out("status/provenance.html"),
            caption="../workflow/report/provenance.rst",
            category="Status",
            labels={"page": "provenance of every record"},
        ),
        runs=report(
            out("status/runs.html"),
            caption="../workflow/report/runs.rst",
            category="Status",
            labels={"page": "every results tree side by side"},
        ),
    log:
        out("logs/status/status.log"),
    conda:
        "../environment.yml"
    script:
        "../workflow/scripts/status.py"
