# Runtime and cost plan (docs/planner.md): every GPU stage x every setup of `plan.setups`.
# plan_estimate runs first (top priority, nothing of the run as input) and freezes the forecast;
# plan adds what the finished stages took (benchmark files, provenance wall times) and the error,
# or says per row that a stage has not run yet.
# Included after the stage rules: it reads their output and benchmark patterns.


localrules:
    plan_estimate,
    plan,


validate(config.setdefault("plan", {}), schema="../workflow/schemas/plan.schema.yaml")

# the rules' own file patterns, so the planner finds each stage's output and benchmark file
PLAN_OUTPUTS = {
    "leakage": str(rules.leakage_probe.output[0]),
    "finetune": str(rules.finetune.output.summary),
    "eval": str(rules.eval_model.output.metrics),
    **(
        {"prepare_model": str(rules.prepare_model.output.summary)}
        if EMBEDDED_MODEL
        else {}
    ),
}
PLAN_BENCHMARKS = {
    "leakage": str(rules.leakage_probe.benchmark),
    "finetune": str(rules.finetune.benchmark),
    "eval": str(rules.eval_model.benchmark),
    **({"prepare_model": str(rules.prepare_model.benchmark)} if EMBEDDED_MODEL else {}),
}
# what the plan depends on: the study's config sub-trees, the resolved variants, the file patterns
PLAN_PARAMS = sorted_tree(
    dict(
        config={
            k: config[k]
            for k in ("model", "data", "eval", "leakage", "finetune", "plan")
        },
        variants=VARIANTS,
        outputs=PLAN_OUTPUTS,
        benchmarks=PLAN_BENCHMARKS,
    )
)
# every planned stage's output: what the plan of a full run waits for
PLAN_STAGE_OUTPUTS = [
    *([PLAN_OUTPUTS["prepare_model"]] if EMBEDDED_MODEL else []),
    *expand(PLAN_OUTPUTS["leakage"], policy=TRAIN_POLICIES),
    *expand(PLAN_OUTPUTS["finetune"], variant=sorted(VARIANTS)),
    *eval_targets("metrics.json"),
]
# Asked for on its own (`snakemake results/plan.csv`, before renting anything), the plan must run
# no stage, not even one whose output is out of date: it reads the stage outputs that exist (none
# in a fresh checkout) without making them inputs, and says which stages have not run; their
# modification times are a param, so a newer result reruns the plan. Any other invocation (rule
# all: no targets; --report; other targets) waits for every stage, so a full run writes the plan
# last, with every actual.
PLAN_PRODUCTS = {
    "plan",
    "plan_estimate",
    out("plan.csv"),
    out("plan.html"),
    out("plan/estimate.csv"),
    out("plan/estimate.html"),
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
        csv=out("plan/estimate.csv"),
        html=out("plan/estimate.html"),
    log:
        out("logs/plan/estimate.log"),
    priority: 100
    conda:
        "../environment.yml"
    params:
        plan=PLAN_PARAMS,
    script:
        "../workflow/scripts/plan.py"


rule plan:
    input:
        estimate=out("plan/estimate.csv"),
        stages=lambda wc: [] if only_targets(PLAN_PRODUCTS) else PLAN_STAGE_OUTPUTS,
    output:
        csv=out("plan.csv"),
        html=report(
            out("plan.html"),
            caption="../workflow/report/plan.rst",
            category="Plan",
            labels={"table": "runtime and cost: estimate vs actual"},
        ),
    log:
        out("logs/plan/plan.log"),
    conda:
        "../environment.yml"
    params:
        plan=PLAN_PARAMS,
        finished=lambda wc: (
            {f: os.path.getmtime(f) for f in PLAN_STAGE_OUTPUTS if os.path.exists(f)}
            if only_targets(PLAN_PRODUCTS)
            else {}
        ),
    script:
        "../workflow/scripts/plan.py"
