"""ablate.upstream.hf: each touch of transformers' private names, checked against the pinned
transformers (5.23.0). A failure here means the pinned version changed what the package relies
on: adapt the touch in src/ablate/upstream/hf.py (its docstring's list names the callers)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from ablate.upstream import hf


@pytest.fixture(scope="module")
def tiny_config():
    return LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )


def test_attn_implementation_follows_the_model(tiny_config):
    """Touch 1: the implementation given by the public ``from_config`` and changed by the public
    ``set_attn_implementation`` is what the config reads; a config without one reads None or
    transformers' default."""
    model = AutoModelForCausalLM.from_config(tiny_config, attn_implementation="eager")
    assert hf.attn_implementation(model.config) == "eager"
    model.set_attn_implementation("sdpa")
    assert hf.attn_implementation(model.config) == "sdpa"
    assert hf.attn_implementation(object()) is None


def test_no_split_modules_names_the_layers(tiny_config):
    """Touch 2: the names are the classes of the model's decoder layers, as many as it has."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config)
    names = hf.no_split_modules(model)
    layers = [m for m in model.modules() if type(m).__name__ in names]
    assert names == {"LlamaDecoderLayer"}
    assert layers == list(model.model.layers)
    assert hf.no_split_modules(torch.nn.Linear(2, 2)) == set()
