# Bridge stage 1: the source and target models. Embedded: a tiny LM of its family with its own
# tokenizer, pretrained here on the world's corpus. Pretrained: the hub id and its revision in a
# model card, registered on the submit host (never a rented instance). Either way
# <results>/bridge/models/<role>/card.json is what every later job loads the model through.
BRIDGE_EMBEDDED_ROLES = [
    r for r in bridge_pins.ROLES if BRIDGE_CFG[r]["source"] == "embedded"
]
BRIDGE_HUB_ROLES = [r for r in bridge_pins.ROLES if r not in BRIDGE_EMBEDDED_ROLES]

if BRIDGE_EMBEDDED_ROLES:

    rule bridge_model:
        input:
            corpus=bout("corpus"),
        output:
            model=directory(bout("model_final")),
            summary=bout("model_summary"),
            card=bout("card"),
        log:
            bout("log", folder="model", stem="{role}"),
        benchmark:
            bout("benchmark", folder="model", stem="{role}")
        wildcard_constraints:
            role="|".join(BRIDGE_EMBEDDED_ROLES),
        conda:
            "../../environment.yml"
        threads: bridge_res("prepare_model", "threads")
        resources:
            **bridge_resources_of("prepare_model"),
        params:
            model=job_config("bridge_model"),
        script:
            "../../workflow/scripts/bridge_model.py"


if BRIDGE_HUB_ROLES:

    localrules:
        bridge_register,

    rule bridge_register:
        output:
            card=bout("card"),
        log:
            bout("log", folder="model", stem="{role}"),
        wildcard_constraints:
            role="|".join(BRIDGE_HUB_ROLES),
        conda:
            "../../environment.yml"
        params:
            model=job_config("bridge_register"),
        script:
            "../../workflow/scripts/bridge_register.py"
