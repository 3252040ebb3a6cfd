"""The typed training params (ablate.core.training.params.TrainParams and the mask study's
MaskParams) against the config schema, the one statement of keys, bounds and defaults: the same
keys, the keys that may be absent, every default and enum value of a type the field holds; built
by the resolution only, and back to the dict it was built from."""

from __future__ import annotations

import typing

import pytest
from helpers import admits

from ablate.core import config
from ablate.core.training import params
from ablate.core.training.params import TrainingConfigError, TrainParams
from ablate.mask.training import params as mask_params
from ablate.mask.training.params import MaskParams

SCHEMAS = {
    TrainParams: {kind: params.params_schema(kind) for kind in params.KINDS},
    MaskParams: {kind: mask_params.params_schema(kind) for kind in params.KINDS},
}


def _properties(schema) -> dict:
    """Each key's schema node, its ``$ref`` followed (a kind's override lists only defaults)."""
    out = {}
    for key in config.allowed_keys(schema):
        node = {}
        for pointer in ("$defs/finetune_params", "$defs/mask_finetune_params"):
            node |= config.subschema(pointer).get("properties", {}).get(key, {})
        node |= schema.get("properties", {}).get(key, {})
        while "$ref" in node:
            ref = node.pop("$ref")[2:]
            node = {**config.subschema(ref), **node}
            node.pop("$defs", None)
        out[key] = node
    return out


@pytest.mark.parametrize("cls", list(SCHEMAS), ids=lambda c: c.__name__)
def test_the_type_and_the_schema_have_the_same_keys(cls):
    keys = set().union(*(config.allowed_keys(s) for s in SCHEMAS[cls].values()))
    assert set(cls.keys()) == keys


@pytest.mark.parametrize("cls", list(SCHEMAS), ids=lambda c: c.__name__)
def test_a_field_is_optional_where_a_kind_has_no_default_for_its_key(cls):
    may_be_absent = {
        k for k in cls.keys() for s in SCHEMAS[cls].values() if k not in config.defaults_of(s)
    }
    assert cls.optional() == may_be_absent


@pytest.mark.parametrize("cls", list(SCHEMAS), ids=lambda c: c.__name__)
def test_every_default_and_enum_value_is_of_the_fields_type(cls):
    hints = typing.get_type_hints(cls)
    for kind, schema in SCHEMAS[cls].items():
        for key, default in config.defaults_of(schema).items():
            assert admits(hints[key], default), (kind, key, default, hints[key])
        for key, node in _properties(schema).items():
            for value in node.get("enum", []):
                assert admits(hints[key], value), (kind, key, value, hints[key])


@pytest.mark.parametrize("kind", params.KINDS)
def test_resolution_builds_the_type_and_gives_back_the_same_dict(kind):
    p = params.resolve_params({"max_steps": 7}, kind)
    assert isinstance(p, TrainParams) and p.max_steps == 7
    assert p.as_dict() == {**params.defaults(kind), "max_steps": 7}
    m = mask_params.resolve_params({"packing": True}, kind)
    assert isinstance(m, MaskParams) and m.packing is True
    assert m.as_dict() == {**mask_params.defaults(kind), "packing": True}


def test_an_unset_key_stays_out_of_the_dict_and_reads_none():
    p = params.resolve_params({}, "finetune")
    assert p.loss_vocab is None and "loss_vocab" not in p.as_dict()
    p = params.resolve_params({"loss_vocab": "corpus"}, "finetune")
    assert p.loss_vocab == "corpus" and p.as_dict()["loss_vocab"] == "corpus"


def test_a_schema_key_without_a_field_is_refused():
    """A study's schema checked into the core's type (a study that forgot its subclass)."""
    with pytest.raises(TrainingConfigError, match="TrainParams has no field for packing"):
        params.check_params(
            mask_params.defaults("finetune"), "finetune", mask_params.params_schema("finetune")
        )
