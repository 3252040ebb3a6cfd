# Bridge stage 1b: frozen work done once. The source's hidden states of a dataset, once per
# states key (ablate.bridge.caches.states_key: source model + revision, dataset, layer,
# max_source_len, dtype), and the KL teacher's rows (caches.teacher_key: the target reading the text
# prompt + answer), as sharded .npy files that every training run sharing the key reads
# memory-mapped (ablate.bridge.states). bridge.cache_frozen_states: false = none of these jobs.


BRIDGE_SOURCE_STATES = [s for s, st in BRIDGE.states.items() if st["what"] == "source"]
BRIDGE_TEACHER_STATES = [
    s for s, st in BRIDGE.states.items() if st["what"] == "teacher"
]

if BRIDGE_SOURCE_STATES:

    rule bridge_source_states:
        input:
            unpack(bridge_states_inputs),
        output:
            train=directory(bout("states_split", what="source", split="train")),
            test=directory(bout("states_split", what="source", split="test")),
            summary=bout("states_summary", what="source"),
        log:
            bout("log", folder="source_states", stem="{states_id}"),
        benchmark:
            bout("benchmark", folder="source_states", stem="{states_id}")
        wildcard_constraints:
            states_id="|".join(BRIDGE_SOURCE_STATES),
        conda:
            "../../environment.yml"
        threads: bridge_res("frozen_states", "threads")
        resources:
            **bridge_resources_of("frozen_states"),
        params:
            states=job_config("bridge_source_states"),
        script:
            "../../workflow/scripts/bridge_frozen_states.py"


if BRIDGE_TEACHER_STATES:

    rule bridge_teacher_states:
        input:
            unpack(bridge_states_inputs),
        output:
            train=directory(bout("states_split", what="teacher", split="train")),
            summary=bout("states_summary", what="teacher"),
        log:
            bout("log", folder="teacher_states", stem="{states_id}"),
        benchmark:
            bout("benchmark", folder="teacher_states", stem="{states_id}")
        wildcard_constraints:
            states_id="|".join(BRIDGE_TEACHER_STATES),
        conda:
            "../../environment.yml"
        threads: bridge_res("frozen_states", "threads")
        resources:
            **bridge_resources_of("frozen_states"),
        params:
            states=job_config("bridge_teacher_states"),
        script:
            "../../workflow/scripts/bridge_frozen_states.py"
