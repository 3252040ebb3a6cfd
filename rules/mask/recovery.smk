# The study's product: every evaluation in one long table with its stage-1/stage-2 comparisons.


localrules:
    recovery_table,


rule recovery_table:
    input:
        metrics=outputs_of("eval_model", "metrics"),
        samples=outputs_of("eval_model", "samples"),
        summaries=outputs_of("finetune", "summary"),
    output:
        csv=report(
            out(P["recovery_csv"]),
            caption="../../workflow/report/recovery.rst",
            category="Recovery",
            labels={"table": "recovery (long format)"},
        ),
        parquet=out(P["recovery_parquet"]),
        tex=out(P["recovery_tex"]),
    log:
        out(P["recovery_log"]),
    conda:
        "../../environment.yml"
    params:
        recovery=recovery_params(),
        # the study's one significance level (config mask.claims.alpha) for the table's tests
        alpha=MASK["claims"]["alpha"],
    script:
        "../../workflow/scripts/recovery_table.py"
