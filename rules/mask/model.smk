# Stage 0: the base model. Embedded: a tiny Ministral-3 with the real Tekken tokenizer, pretrained
# causally here. Pretrained: a hub id or local path, recorded (with its revision) in base.json.
# Either way results/model/base.json is the model card every later stage reads.

if EMBEDDED_MODEL:

    rule prepare_model:
        input:
            corpus=out(P["corpus"]),
        output:
            tokenizer=directory(mout("tokenizer")),
            model=directory(mout("base_model")),
            summary=mout("base_summary"),
            card=mout("model_card"),
        log:
            mout("prepare_model_log"),
        benchmark:
            mout("prepare_model_benchmark")
        conda:
            "../../environment.yml"
        threads: res("prepare_model", "threads")
        resources:
            **resources_of("prepare_model"),
        params:
            model=job_config("prepare_model"),
        script:
            "../../workflow/scripts/prepare_model.py"

else:

    # Registering is a hub query (and with download: true one snapshot download), not GPU work:
    # on the submit host, which has network where cluster nodes often have none, and which
    # shares its Hugging Face cache with SLURM jobs; never a rented Vast instance.
    localrules:
        prepare_model,

    rule prepare_model:
        output:
            card=mout("model_card"),
        log:
            mout("prepare_model_log"),
        conda:
            "../../environment.yml"
        threads: res("prepare_model", "threads")
        resources:
            **resources_of("prepare_model"),
        params:
            model=job_config("prepare_model"),
        script:
            "../../workflow/scripts/register_model.py"
