# Bridge stage 1b: the frozen source's hidden states of a dataset, once per states key
# (ablate.bridge.grid.states_key: source model + revision, dataset, layer, max_source_len, dtype),
# sharded .npy files that every training run sharing the key reads memory-mapped
# (ablate.bridge.states). bridge.cache_source_states: false = no such job, each run runs the source.
BRIDGE_STATES_IDS = sorted(BRIDGE.states)


if BRIDGE_STATES_IDS:

    wildcard_constraints:
        states_id="|".join(BRIDGE_STATES_IDS),

    rule bridge_source_states:
        input:
            unpack(bridge_states_inputs),
        output:
            train=directory(bout("states_split", split="train")),
            test=directory(bout("states_split", split="test")),
            summary=bout("states_summary"),
        log:
            bout("log", rule="source_states", name="{states_id}"),
        benchmark:
            bout("benchmark", rule="source_states", name="{states_id}")
        conda:
            "../../environment.yml"
        threads: bridge_res("source_states", "threads")
        resources:
            **bridge_resources_of("source_states"),
        params:
            states=bridge_states_params,
        script:
            "../../workflow/scripts/bridge_source_states.py"
