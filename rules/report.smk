# Figures for `snakemake --report`: per-task scores by stage, and the training loss curves.


localrules:
    plot_scores,
    plot_loss_curves,


rule plot_scores:
    input:
        "results/recovery.csv",
    output:
        report(
            "results/plots/scores.png",
            caption="../workflow/report/scores.rst",
            category="Plots",
            labels={"figure": "scores by stage"},
        ),
    log:
        "logs/plot_scores/scores.log",
    conda:
        "../environment.yml"
    script:
        "../workflow/scripts/plot_scores.py"


rule plot_loss_curves:
    input:
        pretrain=["results/model/base/summary.json"] if EMBEDDED_MODEL else [],
        finetunes=expand(
            "results/finetune/{variant}/summary.json", variant=sorted(VARIANTS)
        ),
    output:
        report(
            "results/plots/loss_curves.png",
            caption="../workflow/report/loss_curves.rst",
            category="Plots",
            labels={"figure": "loss curves"},
        ),
    log:
        "logs/plot_loss_curves/loss_curves.log",
    conda:
        "../environment.yml"
    script:
        "../workflow/scripts/plot_loss_curves.py"
