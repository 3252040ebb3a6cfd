# Runtime and cost plan (docs/planner.md): every planned job x every setup of `plan.setups`.
# plan_estimate runs first (top priority, nothing of the run as input) and freezes the forecast;
# plan adds what the finished jobs took (benchmark files, provenance wall times) and the error,
# or says per row that a job has not run yet. The jobs are the job lists (JOBS) of the studies of
# `plan.studies` the config runs, the same ones the rules run; a forecast never stops a study: a
# missing input is a row note.
from ablate.core.reruns import runcache
from ablate.core.planner.files import PLAN_FILES


localrules:
    plan_estimate,
    plan,


# what the plan depends on: the config sub-trees the job lists and the estimate are made from
PLAN_PARAMS = sorted_tree(
    {
        **{k: config[k] for k in ("studies", "results", "plan")},
        # each planned study's part of its section (its layout's plan_config)
        **{s: studies.side(s, "layout").plan_config(config) for s in PLANNED_STUDIES},
    }
)


# the record (provenance) file of every planned job: what the plan of a full run waits for
PLANNED_JOBS = [j for j in JOBS if j.kind and j.study in PLANNED_STUDIES]
PLANNED_RECORDS = [j.record for j in PLANNED_JOBS]
# Asked for on its own (`snakemake results/plan.csv`, before renting anything), the plan must run
# no job, not even one whose output is out of date: it reads the job outputs that exist (none
# in a fresh checkout) without making them inputs, and says which jobs have not run; their
# modification times are a param, so a newer result reruns the plan. Any other invocation (rule
# all: no targets; --report; other targets) waits for every job, so a full run writes the plan
# last, with every actual.
PLAN_PRODUCTS = {
    "plan",
    "plan_estimate",
    *(
        out(PLAN_FILES[k])
        for k in ("plan_csv", "plan_html", "estimate_csv", "estimate_html")
    ),
}


rule plan_estimate:
    input:
        measurements=config["plan"]["measurements"],
        # a missing snapshot is allowed: the plan then says so in price_source
        offers=[f for f in [config["plan"]["offers_snapshot"]] if os.path.exists(f)],
        # the vast profile's offer filters and groups shape prices and overheads
        vast_profile=[
            f for f in [config["plan"]["vast_profile"]] if f and os.path.exists(f)
        ],
    output:
        csv=out(PLAN_FILES["estimate_csv"]),
        html=out(PLAN_FILES["estimate_html"]),
    log:
        out(PLAN_FILES["estimate_log"]),
    priority: 100
    conda:
        "../environment.yml"
    params:
        plan=PLAN_PARAMS,
        # each job as its script will see it: the planner builds the key its JobCache will (the
        # script reads run_cache from the config, as the jobs do: switching it reruns no plan)
        cache_jobs=lambda wc: runcache.job_specs(rule_of, PLANNED_JOBS),
    script:
        "../workflow/scripts/plan.py"


rule plan:
    input:
        estimate=out(PLAN_FILES["estimate_csv"]),
        jobs=lambda wc: (
            []
            if asked_alone(PLAN_PRODUCTS, out(PLAN_FILES["plan_csv"]), PLANNED_RECORDS)
            else PLANNED_RECORDS
        ),
    output:
        csv=out(PLAN_FILES["plan_csv"]),
        html=report(
            out(PLAN_FILES["plan_html"]),
            caption="../workflow/report/plan.rst",
            category="Plan",
            labels={"table": "runtime and cost: estimate vs actual"},
        ),
    log:
        out(PLAN_FILES["plan_log"]),
    conda:
        "../environment.yml"
    params:
        plan=PLAN_PARAMS,
        finished=lambda wc: (
            {f: os.path.getmtime(f) for f in PLANNED_RECORDS if os.path.exists(f)}
            if only_targets(PLAN_PRODUCTS)
            else {}
        ),
    script:
        "../workflow/scripts/plan.py"
