# The embedded synthetic world: pretraining corpus, multiple-choice tasks (jsonl + lm-eval YAML)
# and SFT pairs in Alpaca columns. Real studies use lm-eval task names and a datasets id instead,
# so this rule only exists for mask.data.source: embedded.

if EMBEDDED_DATA:

    localrules:
        make_data,

    rule make_data:
        output:
            corpus=out(P["corpus"]),
            tasks=directory(out(P["tasks"])),
            sft=out(P["sft"]),
        log:
            out(P["make_data_log"]),
        conda:
            "../../environment.yml"
        params:
            data=job_config("make_data"),
        script:
            "../../workflow/scripts/make_data.py"
