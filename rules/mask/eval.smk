# Stages 1, 2, 4, 5 (evaluation): one rule for every (model, policy) pair. model = base or a
# finetune variant; params are the eval sub-tree only, so an eval edit reruns every evaluation
# and the table, never a finetune.


rule eval_model:
    input:
        unpack(model_inputs),
        tasks=task_inputs(),
    output:
        metrics=out("eval/{model}/{policy}/metrics.json"),
        samples=out("eval/{model}/{policy}/samples.parquet"),
    log:
        out("logs/eval_model/{model}.{policy}.log"),
    benchmark:
        out("benchmarks/eval_model/{model}.{policy}.tsv")
    conda:
        "../../environment.yml"
    threads: res("eval", "threads")
    resources:
        **resources_of("eval"),
    params:
        eval=eval_params(),
    script:
        "../../workflow/scripts/eval_model.py"
