# Stages 1, 2, 4, 5 (evaluation): one rule for every (model, policy) pair. model = base or a
# finetune variant; params are the eval sub-tree only, so an eval edit reruns every evaluation
# and the table, never a finetune.


rule eval_model:
    input:
        unpack(model_inputs),
        **hub_lock_input(not EMBEDDED_DATA),
        tasks=task_inputs(),
        own_tasks=own_task_inputs(),
    output:
        metrics=mout("eval_metrics"),
        samples=mout("eval_samples"),
    log:
        mout("eval_log"),
    benchmark:
        mout("eval_benchmark")
    conda:
        "../../environment.yml"
    threads: res("eval", "threads")
    resources:
        **resources_of("eval"),
    params:
        eval=job_config("eval_model"),
    script:
        "../../workflow/scripts/eval_model.py"
