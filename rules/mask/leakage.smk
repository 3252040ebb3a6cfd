# The leakage probe, once per training policy: does the policy let response tokens see the
# answer? Response loss under the policy vs causal on the first SFT pairs, and whether a loss
# moves when only a later token changes; a finetune under a leaking policy is refused unless its
# variant sets allow_leakage.


rule leakage_probe:
    input:
        unpack(base_model_inputs),
        **hub_lock_input(not EMBEDDED_DATA),
        sft=sft_input(),
    output:
        probe=mout("leakage"),
        # what a finetune reads: the verdict alone (a probe of other evidence and the same
        # verdict keeps the finetunes' run-cache keys)
        verdict=mout("leakage_verdict"),
    log:
        mout("leakage_log"),
    benchmark:
        mout("leakage_benchmark")
    conda:
        "../../environment.yml"
    threads: res("leakage", "threads")
    resources:
        **resources_of("leakage"),
    params:
        leakage=job_config("leakage_probe"),
        sft=sft_params(),
    script:
        "../../workflow/scripts/leakage_probe.py"
