# Stages 3 and 5: full-weight SFT of the base model under each variant's policy. Params are the
# variant's resolved hyperparameters only, so editing one variant reruns that finetune and its
# evaluations, nothing upstream. Training checkpoints (results/finetune/<v>/checkpoints/) are not
# outputs: a rerun of the same configuration resumes from them.


rule finetune:
    input:
        unpack(base_model_inputs),
        **hub_lock_input(not EMBEDDED_DATA),
        probe=lambda wc: model_file(
            "leakage_verdict", wc, policy=VARIANTS[wc.variant]["policy"]
        ),
        sft=sft_input(),
    output:
        model=directory(mout("finetune_model")),
        summary=mout("finetune_summary"),
    log:
        mout("finetune_log"),
    benchmark:
        mout("finetune_benchmark")
    conda:
        "../../environment.yml"
    threads: res("finetune", "threads")
    resources:
        **resources_of("finetune"),
    params:
        finetune=job_config("finetune"),
        sft=sft_params(),
    script:
        "../../workflow/scripts/finetune.py"
