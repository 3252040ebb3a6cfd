# The study's product: every evaluation in one long table with its stage-1/stage-2 comparisons.


localrules:
    recovery_table,


rule recovery_table:
    input:
        metrics=eval_targets("metrics.json"),
        samples=eval_targets("samples.parquet"),
        summaries=expand(
            out("finetune/{variant}/summary.json"), variant=sorted(VARIANTS)
        ),
    output:
        csv=report(
            out("recovery.csv"),
            caption="../../workflow/report/recovery.rst",
            category="Recovery",
            labels={"table": "recovery (long format)"},
        ),
        parquet=out("recovery.parquet"),
    log:
        out("logs/recovery_table/recovery.log"),
    conda:
        "../../environment.yml"
    params:
        recovery=recovery_params(),
        # the study's one significance level (config claims.alpha) for the table's tests
        alpha=config["claims"]["alpha"],
    script:
        "../../workflow/scripts/recovery_table.py"
