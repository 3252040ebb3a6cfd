# Figures for `snakemake --report`: per-task scores by stage, and the training loss curves.


localrules:
    plot_scores,
    plot_loss_curves,


rule plot_scores:
    input:
        out(P["recovery_csv"]),
    output:
        report(
            out(P["plot_scores"]),
            caption="../../workflow/report/scores.rst",
            category="Plots",
            labels={"figure": "scores by stage"},
        ),
    log:
        out(P["plot_scores_log"]),
    conda:
        "../../environment.yml"
    script:
        "../../workflow/scripts/plot_scores.py"


rule plot_loss_curves:
    input:
        pretrain=[out(P["base_summary"])] if EMBEDDED_MODEL else [],
        finetunes=outputs_of("finetune", "summary"),
    output:
        report(
            out(P["plot_loss_curves"]),
            caption="../../workflow/report/loss_curves.rst",
            category="Plots",
            labels={"figure": "loss curves"},
        ),
    log:
        out(P["plot_loss_curves_log"]),
    conda:
        "../../environment.yml"
    script:
        "../../workflow/scripts/plot_loss_curves.py"
