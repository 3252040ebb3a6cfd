# Attention-mask ablation study: does removing the causal mask at prefill hurt a causal LM, and
# can full-weight finetuning recover it? Stages: 1 base x causal, 2 base x ablated, 3 finetunes,
# 4 their evaluations, 5 a long-run finetune; all of them meet in results/recovery.csv.
# README.md: how to run; docs/design.md: output layout; config/README.md: every config key.
from snakemake.utils import min_version

min_version("9.20")


# config/config.yaml (embedded default) unless --configfile names another one: that one then
# replaces it, so no embedded setting leaks into a real study through a key it leaves out.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/data.smk"
include: "rules/leakage.smk"
include: "rules/finetune.smk"
include: "rules/eval.smk"
include: "rules/recovery.smk"
include: "rules/report.smk"
include: "rules/claims.smk"
# runtime/cost planner (docs/planner.md): `snakemake results/plan.csv` alone forecasts before
# a run; in `all` it is written last, with the actual time of every stage
include: "rules/plan.smk"


rule all:
    default_target: True
    input:
        "results/recovery.csv",
        "results/recovery.parquet",
        "results/plots/scores.png",
        "results/plots/loss_curves.png",
        "results/claims/mask.csv",
        "results/plan.csv",
