# Figures for `snakemake --report`: per-task scores by stage, and the training loss curves.


localrules:
    plot_scores,
    plot_loss_curves,


rule plot_scores:
    input:
        out("recovery.csv"),
    output:
        report(
            out("plots/scores.png"),
            caption="../../workflow/report/scores.rst",
            category="Plots",
            labels={"figure": "scores by stage"},
        ),
    log:
        out("logs/plot_scores/scores.log"),
    conda:
        "../../environment.yml"
    script:
        "../../workflow/scripts/plot_scores.py"


rule plot_loss_curves:
    input:
        pretrain=[out("model/base/summary.json")] if EMBEDDED_MODEL else [],
        finetunes=expand(
            out("finetune/{variant}/summary.json"), variant=sorted(VARIANTS)
        ),
    output:
        report(
            out("plots/loss_curves.png"),
            caption="../../workflow/report/loss_curves.rst",
            category="Plots",
            labels={"figure": "loss curves"},
        ),
    log:
        out("logs/plot_loss_curves/loss_curves.log"),
    conda:
        "../../environment.yml"
    script:
        "../../workflow/scripts/plot_loss_curves.py"
