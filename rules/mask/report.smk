# Figures for `snakemake --report`: per-task scores by stage, and the training loss curves.


localrules:
    plot_scores,
    plot_loss_curves,


rule plot_scores:
    input:
        mout("recovery_csv"),
    output:
        report(
            mout("plot_scores"),
            caption="../../workflow/report/scores.rst",
            category="Plots",
            subcategory=REPORT_MODEL,
            labels={"figure": "scores by stage"},
        ),
    log:
        mout("plot_scores_log"),
    conda:
        "../../environment.yml"
    script:
        "../../workflow/scripts/plot_scores.py"


rule plot_loss_curves:
    input:
        pretrain=lambda wc: [model_file("base_summary", wc)] if EMBEDDED_MODEL else [],
        finetunes=lambda wc: outputs_of("finetune", "summary", wc),
    output:
        report(
            mout("plot_loss_curves"),
            caption="../../workflow/report/loss_curves.rst",
            category="Plots",
            subcategory=REPORT_MODEL,
            labels={"figure": "loss curves"},
        ),
    log:
        mout("plot_loss_curves_log"),
    conda:
        "../../environment.yml"
    script:
        "../../workflow/scripts/plot_loss_curves.py"
