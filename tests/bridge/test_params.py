"""The bridge's typed params (ablate.bridge.params.BridgeParams) against its params.schema.yaml,
the one statement of keys, bounds and defaults: the same keys in the same order, every default and
enum value of a type the field holds; built by the job's check, and back to the dict it was built
from."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from helpers import admits

from ablate.bridge import params
from ablate.bridge import params as bridge_params
from ablate.bridge.params import BridgeParams


def _node(node: dict) -> dict:
    """A key's schema node, its ``$ref`` (a seed's range) followed."""
    while "$ref" in node:
        ref = node["$ref"].removeprefix("#/$defs/")
        node = {
            **bridge_params.schema()["$defs"][ref],
            **{k: v for k, v in node.items() if k != "$ref"},
        }
    return node


def test_the_type_and_the_schema_have_the_same_keys_in_order():
    """In order too: a record's params (as_dict) keep the schema's order, as the dict did."""
    assert BridgeParams.keys() == list(bridge_params.schema()["properties"])


def test_every_default_and_enum_value_is_of_the_fields_type():
    hints = typing.get_type_hints(BridgeParams)
    for key, node in bridge_params.schema()["properties"].items():
        node = _node(node)
        for value in [node["default"], *node.get("enum", [])]:
            assert admits(hints[key], value), (key, value, hints[key])


def test_the_check_builds_the_type_and_gives_back_the_same_dict():
    p = bridge_params.resolve({"K": 4, "infonce_group": 2})
    typed = bridge_params.check(p)
    assert isinstance(typed, BridgeParams) and typed.K == 4 and typed.infonce_group == 2
    assert typed.as_dict() == p and list(typed.as_dict()) == list(p)
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.K = 5


def test_a_schema_key_without_a_field_is_refused(monkeypatch):
    """A key added to the schema and not to the type: the job's check names it."""
    schema = bridge_params.schema()
    grown = {
        **schema,
        "properties": {**schema["properties"], "new_key": {"type": "integer", "default": 1}},
    }
    monkeypatch.setattr(bridge_params, "schema", lambda: grown)
    with pytest.raises(
        bridge_params.BridgeConfigError, match="BridgeParams has no field for new_key"
    ):
        bridge_params.check(bridge_params.resolve({}))


def test_a_late_key_at_its_default_leaves_the_recorded_params_and_their_check():
    """Runs recorded before ``infonce_group`` existed keep their params (so their run ids and
    Snakemake's params); the job gets them complete; a set group is recorded."""
    p = bridge_params.resolve({})
    old = bridge_params.recorded(p)
    assert "infonce_group" not in old and set(p) - set(old) == set(bridge_params.LATE_KEYS)
    assert bridge_params.check(old).as_dict() == p
    q = bridge_params.resolve({"batch_size": 8, "infonce_group": 2})
    assert bridge_params.recorded(q)["infonce_group"] == 2 and bridge_params.check(q).as_dict() == q
    with pytest.raises(bridge_params.BridgeConfigError, match="canonical"):
        bridge_params.check({**old, "infonce_group": old["batch_size"]})


def test_params_defaults_come_from_the_schema_and_unknown_keys_fail():
    p = params.resolve({})
    assert p == params.defaults()
    assert set(p) >= {
        "K", "depth", "bottleneck", "heads", "dropout", "rope_projection", "lr", "weight_decay",
        "warmup_steps", "steps", "batch_size", "kl_weight", "kl_positions", "kl_after_warmup",
        "infonce_weight", "infonce_temperature", "prompt_align_weight", "early_stopping",
        "patience", "restore_best", "hygiene", "eval_every", "eval_size", "max_new_tokens",
        "max_source_len", "max_prompt_len", "seed", "dataset",
    }  # fmt: skip
    with pytest.raises(params.BridgeConfigError, match=r"bridge\.grid\.1a\.kl_wieght"):
        params.resolve({"kl_wieght": 0.1}, "bridge.grid.1a")
    with pytest.raises(params.BridgeConfigError, match=r"bridge\.dataset"):
        params.resolve({"dataset": "squad"})
