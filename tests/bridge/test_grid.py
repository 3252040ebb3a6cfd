"""The bridge grid resolved at parse time (ablate.bridge.grid): run ids, reuse, bad entries (fast)."""

from __future__ import annotations

import copy
import re

import pytest
from helpers import ROOT, bridge_config

from ablate.bridge import grid, layout
from ablate.bridge import params as bridge_params
from ablate.core.config import ConfigError

#: The code that reads a grid entry's params while the workflow is parsed (Entry.settings).
PARSE_TIME = [
    *(ROOT / "src" / "ablate" / "bridge" / f"{m}.py" for m in ("grid", "caches", "plan", "layout")),
    *sorted((ROOT / "rules" / "bridge").glob("*.smk")),
]


def test_same_as_reuses_the_run(bridge):
    study = grid.resolve(bridge)
    assert study.entries["2c"].run_id == study.entries["1a"].run_id
    assert study.entries["2c"].same_as == "1a"
    assert all(e.same_as is None for e in study.runs.values())
    config = {"bridge": bridge, "results": "results"}
    train = [j for j in layout.jobs(config, study) if j.rule == "bridge_train"]
    assert len(train) == len(bridge["grid"]) - 1  # every entry but 2c
    (owner,) = [j for j in train if j.wildcards["run_id"] == study.entries["1a"].run_id]
    assert owner.serves == ["1a", "2c"] and owner.name == "train/1a+2c"


def test_run_ids_follow_the_resolved_configuration(bridge):
    study = grid.resolve(bridge)
    ids = {n: e.run_id for n, e in study.entries.items() if e.same_as is None}
    assert len(set(ids.values())) == len(ids)  # distinct configurations, distinct ids
    # the same configuration under another name: the same id (nothing about the name is hashed)
    renamed = copy.deepcopy(bridge)
    renamed["grid"] = {"first": renamed["grid"]["1a"]}
    renamed["infer"] = {"entry": "first", "qa_entry": None, "n_samples": 8}
    assert grid.resolve(renamed).entries["first"].run_id == ids["1a"]
    # any change of a param, a model or the data gives a new id
    for path, value in [
        (("grid", "1a", "lr"), 0.5),
        (("defaults", "steps"), 7),
        (("data", "seed"), 9),
        (("target", "pretrain"), {"max_steps": 3}),
    ]:
        edited = copy.deepcopy(bridge)
        node = edited
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        assert grid.resolve(edited).entries["1a"].run_id != ids["1a"], path


def test_swap_swaps_the_roles(bridge):
    study = grid.resolve(bridge)
    swap, base = study.entries["swap"], study.entries["1a"]
    assert (swap.source_role, swap.target_role) == ("target", "source")
    assert swap.params == base.params and swap.run_id != base.run_id


def test_duplicate_configurations_name_both_entries(bridge):
    bridge["grid"]["ablC_kl_prompt"] = dict(bridge["grid"]["ablB_kl_only"])
    with pytest.raises(ConfigError) as info:
        grid.resolve(bridge)
    msg = str(info.value)
    assert "'ablB_kl_only'" in msg and "'ablC_kl_prompt'" in msg and "same_as" in msg


def test_an_override_equal_to_the_defaults_is_a_duplicate(bridge):
    """An explicit override that changes nothing is the seed's fault too: 1a = the defaults."""
    bridge["grid"]["1c"] = {"K": bridge["defaults"]["K"]}
    with pytest.raises(ConfigError, match="'1a' and '1c'"):
        grid.resolve(bridge)


@pytest.mark.parametrize(
    "base, spelling",
    [
        ({"prompt_align_weight": 0}, {"prompt_align_weight": 0.0}),  # 0 vs 0.0
        ({}, {"grad_clip": 1}),  # vs the default 1.0
        ({}, {"gate_lr_multiplier": 3}),  # vs the default 3.0
        ({"early_stopping": False}, {"early_stopping": False, "patience": 9}),  # inert
        ({"kl_weight": 0}, {"kl_weight": 0.0, "kl_positions": 5, "kl_after_warmup": False}),
        ({"infonce_weight": 0}, {"infonce_weight": 0, "infonce_temperature": 0.5}),
        # InfoNCE's group = the process's batch is the null default; inert without InfoNCE
        ({}, {"infonce_group": 4}),
        ({"infonce_weight": 0}, {"infonce_weight": 0, "infonce_group": 2}),
        # steps start at 1: after 0 warmup steps is every step
        ({"warmup_steps": 0}, {"warmup_steps": 0, "kl_after_warmup": False}),
        # no evaluation before the last step (160) can stop the run
        ({"eval_every": 160}, {"eval_every": 160, "early_stopping": False}),
        ({"eval_every": 200, "patience": 5}, {"eval_every": 200}),
        # evaluations at 40, 80, 120 inside the run: 3 without improvement at most
        ({"patience": 4}, {"early_stopping": False}),
        ({"model_dtype": "float32"}, {"model_dtype": "auto"}),  # auto on a CPU-only study
    ],
)
def test_spellings_of_one_configuration_are_one_run(bridge, base, spelling):
    """The identity is the resolved configuration: each pair trains once (the seed's ablB/C)."""
    bridge["grid"] = {"first": base, "second": spelling}
    bridge["infer"] = {"entry": "first", "qa_entry": None, "n_samples": 8}
    with pytest.raises(ConfigError, match="'first' and 'second' resolve to the same"):
        grid.resolve(bridge)
    bridge["grid"]["second"] = {**spelling, "seed": 7}  # a real difference is its own run
    study = grid.resolve(bridge)
    assert study.entries["first"].run_id != study.entries["second"].run_id


def test_an_integer_written_as_a_float_is_refused_naming_the_entrys_key(bridge):
    """`K: 8.0` was one spelling of `K: 8` (canonicalized); every schema now refuses a float
    where an integer is meant, as `batch_size: 8.0` failed a finetune after the dry run."""
    bridge["grid"] = {"first": {}, "second": {"K": 8.0}}
    with pytest.raises(
        ConfigError, match=r"bridge\.grid\.second\.K: 8\.0 is not of type 'integer': write 8"
    ):
        grid.resolve(bridge)


def test_an_entry_reads_its_params_typed_as_the_job_takes_them(bridge):
    """Entry.settings: the recorded params (late keys at their default left out) complete and
    typed, as the job's check builds them; a same_as entry's are its twin's."""
    study = grid.resolve(bridge)
    for e in study.entries.values():
        assert e.settings == bridge_params.check(e.params)
        full = e.settings.as_dict()
        assert full.items() >= e.params.items()
        assert set(full) - set(e.params) <= set(bridge_params.LATE_KEYS)
        assert e.dataset == e.settings.dataset and e.settings.K == e.params["K"]
    assert study.entries["2c"].settings == study.entries["1a"].settings
    e = study.entries["1a"]
    assert set(bridge_params.LATE_KEYS) - set(e.params)  # the default's late keys: not recorded
    assert e.settings is e.settings  # checked once per entry


def test_parse_time_code_reads_an_entrys_params_typed():
    """Entry.params is what the run identity hashes and the jobs get; the grid, the caches, the
    plan and the rules read its values as Entry.settings' attributes, never by a string key."""
    dict_read = re.compile(r"\.params(\[|\.get\()")
    for path in PARSE_TIME:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not dict_read.search(line), f"{path.name}:{n} reads Entry.params by key"


def test_auto_dtype_is_the_dtype_of_the_training_device(bridge):
    bridge["grid"] = {"first": {"model_dtype": "auto"}}
    bridge["infer"] = {"entry": "first", "qa_entry": None, "n_samples": 8}
    assert grid.resolve(bridge).entries["first"].params["model_dtype"] == "float32"
    bridge["resources"]["train"]["gpu"] = 1
    e = grid.resolve(bridge).entries["first"]
    assert e.params["model_dtype"] == "bfloat16" == e.identity["params"]["model_dtype"]
    bridge["grid"]["second"] = {"model_dtype": "bfloat16"}
    with pytest.raises(ConfigError, match="'first' and 'second' resolve to the same"):
        grid.resolve(bridge)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"grid": {"1a": {"Kay": 8}}}, "bridge.grid.1a.Kay"),
        ({"grid": {"2b": {"heads": 5}}}, "bridge.grid.2b.bottleneck = 64 is not divisible"),
        ({"grid": {"2b": {"K": 0}}}, "bridge.grid.2b.K"),
        ({"defaults": {"lr": -1}}, "bridge.defaults.lr"),
        ({"grid": {"2c": {"same_as": "1z"}}}, "bridge.grid.2c.same_as: '1z'"),
        ({"grid": {"2c": {"same_as": "1a", "K": 4}}}, "bridge.grid.2c: an entry with same_as"),
        ({"infer": {"entry": "4"}}, "bridge.infer.entry: '4' is not a grid entry"),
        ({"target": {"family": "mistral"}}, "bridge.target.family: 'mistral' is also"),
        (
            {
                "source": {"arch": {"tokenizer": {"type": "byte_bpe"}}},
                "target": {"arch": {"tokenizer": {"type": "byte_bpe"}}},
            },
            "bridge.target.arch.tokenizer.type: 'byte_bpe' is also",
        ),
    ],
)
def test_bad_entries_name_the_key(bridge, edit, message):
    for section, value in edit.items():
        for k, v in value.items():
            bridge[section][k] = v
    with pytest.raises(ConfigError) as info:
        grid.resolve(bridge)
    assert message in str(info.value)


def test_same_hub_model_twice_is_refused():
    bridge = bridge_config("latentwire.yaml")
    bridge["target"]["path"] = bridge["source"]["path"]
    with pytest.raises(ConfigError, match="bridge.target.path"):
        grid.resolve(bridge)


def test_seed_study_grid():
    """config/latentwire.yaml holds the seed's grid (latentwire.md's table)."""
    study = grid.resolve(bridge_config("latentwire.yaml"))
    arch = {
        n: tuple(e.params[k] for k in ("K", "depth", "bottleneck", "heads", "warmup_steps"))
        for n, e in study.entries.items()
    }
    assert arch["1a"] == arch["1b"] == arch["3a"] == (64, 8, 1024, 16, 750)
    assert arch["2a"] == (32, 4, 768, 12, 600)
    assert arch["2b"] == (48, 6, 1024, 16, 750)
    p = study.entries["1a"].params
    assert (p["lr"], p["weight_decay"], p["steps"]) == (1e-4, 0.01, 3000)
    # the seed's 10 rows per GPU on 4 GPUs, placed as 40 rows in InfoNCE groups of 10 on one
    assert (p["batch_size"], p["infonce_group"], study.config["resources"]["train"]["gpu"]) == (
        40,
        10,
        1,
    )
    # every run id is the one of the 4 x 10 spelling (ablate.bridge.grid.placement)
    seed = _placed(bridge_config("latentwire.yaml"), 4, 10, None)
    assert {n: e.run_id for n, e in study.entries.items()} == {
        n: e.run_id for n, e in seed.entries.items()
    }
    assert study.entries["1a"].identity["params"]["batch_size"] == 10
    assert study.entries["1a"].identity["processes"] == 4
    assert (p["eval_size"], p["seed"]) == (500, 1234)
    assert study.entries["3a"].dataset == "hotpotqa"
    assert study.entries["2c"].run_id == study.entries["1a"].run_id
    assert not study.entries["1b"].params["early_stopping"]
    assert study.entries["swap"].source_role == "target"
    ids = {e.identity["source"]["path"] for e in study.runs.values()}
    assert ids == {"mistralai/Mistral-7B-Instruct-v0.3", "meta-llama/Llama-3.1-8B-Instruct"}


def _placed(bridge: dict, gpus: int, batch_size: int, group: int | None) -> grid.Study:
    """The study with its training placed on ``gpus`` processes of ``batch_size`` rows."""
    b = copy.deepcopy(bridge)
    b["resources"]["train"]["gpu"] = gpus
    b["defaults"] = {**b["defaults"], "batch_size": batch_size, "infonce_group": group}
    return grid.resolve(b)


def _spelled_as_before(e: grid.Entry, procs: int) -> dict:
    """The identity of a run spelled without an InfoNCE group, as it always was: the params its
    job gets, and the processes when more than one."""
    old = {k: e.identity[k] for k in ("source", "target", "data")}
    return {**old, "params": e.params, **({"processes": procs} if procs > 1 else {})}


def test_a_placement_is_not_part_of_the_run_identity():
    """One global batch and InfoNCE group, placed on 4 GPUs x 10 rows, 2 x 20 or 1 x 40 (groups
    of 10): one run id per entry, the one the 4 x 10 spelling always had; the jobs get their own
    placement. InfoNCE's group is part of the run (1 x 40 in one group is another loss); without
    InfoNCE (1b) the global batch is the run, spelled in bridge.defaults' group."""
    bridge = bridge_config("latentwire.yaml")
    seed = _placed(bridge, 4, 10, None)
    for name, e in seed.entries.items():  # the seed's spelling: the identity it always had
        assert e.identity == _spelled_as_before(e, 4), name
    for study in (
        _placed(bridge, 1, 40, 10),
        _placed(bridge, 2, 20, 10),
        _placed(bridge, 0, 40, 10),
    ):
        for name, e in study.entries.items():
            assert e.run_id == seed.entries[name].run_id, name
            assert e.identity == seed.entries[name].identity, name
            assert e.params["batch_size"] != 10  # the job trains at its own rows per GPU
        assert study.states.keys() == seed.states.keys()
        assert [grid.infer_identity(study, e) for _, e in study.infer] == [
            grid.infer_identity(seed, e) for _, e in seed.infer
        ]
        assert [grid.infer_params(study, e) for _, e in study.infer] == [
            grid.infer_params(seed, e) for _, e in seed.infer
        ]
    one_group = _placed(bridge, 1, 40, None)  # InfoNCE over all 40 rows: another loss
    assert one_group.entries["1a"].run_id != seed.entries["1a"].run_id
    # 1b (no InfoNCE) trains on the global batch alone: spelled in the study's group of 40 now,
    # a new id for the same training (a rerun, never a wrong reuse)
    assert one_group.entries["1b"].identity["params"]["batch_size"] == 40
    assert "processes" not in one_group.entries["1b"].identity
    other_batch = _placed(bridge, 1, 20, 10)  # another global batch: another run
    assert other_batch.entries["1a"].run_id != seed.entries["1a"].run_id
    assert other_batch.entries["1b"].run_id != seed.entries["1b"].run_id


@pytest.mark.parametrize("gpus", [0, 1, 2, 4])
def test_a_run_without_an_infonce_group_keeps_its_identity(bridge, gpus):
    """The embedded default (1 process, no group) and any process count without a group: the
    identity, run id and benchmark params the grid always had."""
    bridge["resources"]["train"]["gpu"] = gpus
    study = grid.resolve(bridge)
    for name, e in study.entries.items():
        assert e.identity == _spelled_as_before(e, max(1, gpus)), name
    for _, e in study.infer:
        assert grid.infer_params(study, e) == {
            **e.params,
            "eval_size": study.config["infer"]["n_samples"],
        }


def test_grid_records_a_set_group_in_the_run_identity():
    """A group is part of the run: spelled as the data-parallel run it equals (one process of
    4 rows in groups of 2 = 2 processes of 2 rows), the job's params keep it."""
    from helpers import bridge_config

    bridge = bridge_config()
    bridge["grid"] = {"a": {}, "b": {"infonce_group": 2}}
    bridge["infer"] = {"entry": "a", "qa_entry": None, "n_samples": 8}
    a, b = (grid.resolve(bridge).entries[n] for n in ("a", "b"))
    assert "infonce_group" not in a.identity["params"] and "infonce_group" not in a.params
    assert a.params["batch_size"] == b.params["batch_size"] == 4 and b.params["infonce_group"] == 2
    assert "infonce_group" not in b.identity["params"] and b.identity["params"]["batch_size"] == 2
    assert b.identity["processes"] == 2 and a.run_id != b.run_id


def test_the_global_batch_is_part_of_a_run_identity():
    """config/latentwire.yaml's 40 rows per process in InfoNCE groups of 10: gpu 0 and 1 (one
    process, global 40) are the seed's 4 x 10 run; gpu 2 and 4 (global 80, 160) other runs,
    spelled as 8 and 16 processes of 10. The states keys ignore it."""
    import copy

    from ablate.bridge import grid
    from ablate.core import planner

    bridge = planner.load_config(ROOT / "config" / "latentwire.yaml")["bridge"]
    ids, keys = {}, {}
    for gpus in (0, 1, 2, 4):
        b = copy.deepcopy(bridge)
        b["resources"]["train"]["gpu"] = gpus
        study = grid.resolve(b)
        ids[gpus] = study.entries["1a"].run_id
        keys[gpus] = sorted(study.states)
        assert study.entries["1a"].identity["processes"] == 4 * max(1, gpus)
        assert study.entries["1a"].identity["params"]["batch_size"] == 10
    assert ids[0] == ids[1] and len({ids[1], ids[2], ids[4]}) == 3
    assert keys[0] == keys[1] == keys[2] == keys[4]
