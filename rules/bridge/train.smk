# Bridge stage 2: one training run per distinct resolved configuration (run id), not per entry
# name: an entry declared `same_as` another (2c = 1a) has no job of its own. The run id is in
# every path, so a new configuration never overwrites another's files. A run reads its source
# states from their cache (rules/bridge/states.smk) and, on gpu: N > 1, runs N data-parallel
# processes under torchrun (workflow/scripts/bridge_train.py).


rule bridge_train:
    input:
        unpack(bridge_train_inputs),
    output:
        summary=bout("run_summary"),
        samples=bout("run_samples"),
        translator=directory(bout("translator")),
    log:
        bout("log", folder="train", stem="{run_id}"),
    benchmark:
        bout("benchmark", folder="train", stem="{run_id}")
    conda:
        "../../environment.yml"
    threads: bridge_res("train", "threads")
    resources:
        **bridge_resources_of("train"),
    params:
        run=job_config("bridge_train"),
    script:
        "../../workflow/scripts/bridge_train.py"
