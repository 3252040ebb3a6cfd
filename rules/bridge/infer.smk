# Bridge stage 3 (the seed's ablation 4): the inference benchmark of a trained entry's translator
# against the five baselines (source alone, target alone, latent, token budget of K tokens,
# cascade), batch 1, per-sample rows and an aggregate table. bridge.infer names the entries.


rule bridge_infer:
    input:
        unpack(bridge_infer_inputs),
    output:
        samples=bout("infer_samples"),
        summary=report(
            bout("infer_summary"),
            caption="../../workflow/report/bridge_infer.rst",
            category="Bridge",
            subcategory="Inference benchmark",
            labels={"run": "{run_id}"},
        ),
        provenance=bout("infer_provenance"),
    log:
        bout("log", folder="infer", stem="{run_id}"),
    benchmark:
        bout("benchmark", folder="infer", stem="{run_id}")
    wildcard_constraints:
        run_id="|".join(BRIDGE_INFER_IDS) or "(?!x)x",
    conda:
        "../../environment.yml"
    threads: bridge_res("infer", "threads")
    resources:
        **bridge_resources_of("infer"),
    params:
        run=job_config("bridge_infer"),
    script:
        "../../workflow/scripts/bridge_infer.py"
