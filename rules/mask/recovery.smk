# The study's product: every evaluation in one long table with its stage-1/stage-2 comparisons
# (each model's own, in its folder, for a multi-model config).


localrules:
    recovery_table,


rule recovery_table:
    input:
        metrics=lambda wc: outputs_of("eval_model", "metrics", wc),
        samples=lambda wc: outputs_of("eval_model", "samples", wc),
        summaries=lambda wc: outputs_of("finetune", "summary", wc),
    output:
        csv=report(
            mout("recovery_csv"),
            caption="../../workflow/report/recovery.rst",
            category="Recovery",
            subcategory=REPORT_MODEL,
            labels={"table": "recovery (long format)"},
        ),
        parquet=mout("recovery_parquet"),
        tex=mout("recovery_tex"),
    log:
        mout("recovery_log"),
    conda:
        "../../environment.yml"
    params:
        recovery=recovery_params,
        # the study's one significance level (config mask.claims.alpha) for the table's tests
        alpha=MASK["claims"]["alpha"],
    script:
        "../../workflow/scripts/recovery_table.py"


if LMS:

    localrules:
        models_recovery,

    # A multi-model config (mask.models): every model's table in one, a `model` column first.
    rule models_recovery:
        input:
            tables=expand(mout("recovery_csv"), lm=LMS),
        output:
            csv=report(
                out(P["recovery_csv"]),
                caption="../../workflow/report/recovery.rst",
                category="Recovery",
                labels={"table": "recovery, every model (long format)"},
            ),
            parquet=out(P["recovery_parquet"]),
            tex=out(P["recovery_tex"]),
        log:
            out(P["models_recovery_log"]),
        conda:
            "../../environment.yml"
        params:
            models=LMS,
        script:
            "../../workflow/scripts/models_recovery.py"
