# The bridge study's grid, resolved from the config by ablate.bridge.grid (one resolution shared
# by these rules, the tables and the plan: entries, run ids), and its layout (ablate.bridge.layout:
# jobs, file patterns). Any bad entry (unknown key, a K the translator cannot build, two
# identical entries without same_as, a model pair with one tokenizer) stops here, before any
# job, with the key named.
from ablate.bridge import grid as bridge_grid
from ablate.bridge import pins as bridge_pins
from ablate.bridge import layout as bridge_layout

try:
    BRIDGE = bridge_grid.resolve(config["bridge"], config["results"])
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
BRIDGE_JOBS = bridge_layout.jobs(config, BRIDGE)
JOBS.extend(BRIDGE_JOBS)
BRIDGE_CFG = config["bridge"]
BRIDGE_EMBEDDED_DATA = BRIDGE_CFG["data"]["source"] == "embedded"
# the hub-offline switch is per job: each script sets it from its study (ablate.studies.hub_switch)


def bout(key, **wildcards):
    """A bridge file pattern (ablate.bridge.layout.PATTERNS) under the results folder; wildcards
    given are filled in, the others stay {wildcards} of the rule."""
    pattern = bridge_layout.PATTERNS[key]
    for k, v in wildcards.items():
        pattern = pattern.replace(f"{{{k}}}", str(v))
    return out(pattern)


bridge_res, bridge_resources_of = resource_helpers(BRIDGE_CFG["resources"])


BRIDGE_RUN_IDS = sorted(BRIDGE.runs)
BRIDGE_INFER_IDS = [e.run_id for _, e in BRIDGE.infer]


wildcard_constraints:
    role="|".join(bridge_pins.ROLES),
    run_id="|".join(BRIDGE_RUN_IDS),


def bridge_entry_of_run(run_id):
    return BRIDGE.runs[run_id]


def bridge_model_inputs(roles):
    """The cards (and, embedded, the weights: an executor without a shared filesystem ships only
    declared inputs) of the models a job loads; a hub model's: the hub revisions' lock
    (hub_lock_input)."""
    files = {}
    for role in roles:
        files[f"{role}_card"] = bout("card", role=role)
        if BRIDGE_CFG[role]["source"] == "embedded":
            files[f"{role}_model"] = bout("model_final", role=role)
    return {**files, **hub_lock_input(bool(set(roles) & set(BRIDGE.requested)))}


def bridge_data_inputs(kind):
    return {
        "train": out(bridge_layout.dataset_file(kind, "train")),
        "eval": out(bridge_layout.dataset_file(kind, "test")),
    }


def bridge_run_inputs(wildcards):
    """A training run's models (by the entry's direction) and its train / eval files."""
    e = bridge_entry_of_run(wildcards.run_id)
    return {
        **bridge_model_inputs(sorted({e.source_role, e.target_role})),
        **bridge_data_inputs(e.kind),
    }


def bridge_train_inputs(wildcards):
    """A run's inputs and the caches it reads (each cache's split folders and record)."""
    e = bridge_entry_of_run(wildcards.run_id)
    files = bridge_run_inputs(wildcards)
    for sid in (e.states_id, e.teacher_id):
        if sid is not None:
            what = BRIDGE.states[sid]["what"]
            outputs = bridge_layout.states_outputs(BRIDGE, sid)
            # the record (its folder is the cache), then each shard
            files[f"{what}_states"] = out(outputs[-1])
            shards = outputs[:-1]
            files.update({f"{what}_states_{i}": out(o) for i, o in enumerate(shards)})
    return files


def bridge_states_entry(states_id):
    """A run reading the cache (they share its key: the model, dataset, params it depends on)."""
    return BRIDGE.runs[BRIDGE.states[states_id]["runs"][0]]


def bridge_states_inputs(wildcards):
    e = bridge_states_entry(wildcards.states_id)
    role = BRIDGE.states[wildcards.states_id]["role"]
    return {**bridge_model_inputs([role]), **bridge_data_inputs(e.kind)}


def bridge_infer_inputs(wildcards):
    inputs = {k: v for k, v in bridge_run_inputs(wildcards).items() if k != "train"}
    return {
        **inputs,
        "translator": bout("translator", run_id=wildcards.run_id),
    }


# ---------------------------------------------------------------- params of the rules


def bridge_entries_table():
    """Per entry what the tables label rows with (name -> run id, twin, dataset, K, direction)."""
    return sorted_tree(
        {
            n: dict(
                run_id=e.run_id,
                same_as=e.same_as,
                dataset=e.dataset,
                K=e.settings.K,
                direction=f"{e.source_role}->{e.target_role}",
                # a seed of a grid entry with seeds: the entry and the seed
                **({"base": e.base, "seed": e.seed} if e.base else {}),
            )
            for n, e in BRIDGE.entries.items()
        }
    )
