"""ablate.upstream.hf: each touch of transformers' private names, checked against the pinned
transformers (5.23.0). A failure here means the pinned version changed what the package relies
on: adapt the touch in src/ablate/upstream/hf.py (its docstring's list names the callers)."""

from __future__ import annotations

import json

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


def tiny_tokenizer(tmp_path):
    """A tokenizers-backed tokenizer of a few words and special tokens, saved by transformers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "<pad>", "hello", "world"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    tok.add_special_tokens({"additional_special_tokens": ["[INST]"]})
    return tok


def python_parses_of(path, load):
    """How many times ``load()`` parses the file ``path`` with Python's json module."""
    import json
    from unittest import mock

    parses, real = [], json.load

    def counting(fp, *args, **kwargs):
        parses.append(getattr(fp, "name", None))
        return real(fp, *args, **kwargs)

    with mock.patch.object(json, "load", counting):
        loaded = load()
    return sum(1 for name in parses if name == str(path)), loaded


def test_a_saved_tokenizer_loads_without_a_second_parse(tmp_path):
    """Touch 3: transformers' own save leaves the added tokens out of tokenizer_config.json and
    its load then parses tokenizer.json in Python (the upstream behaviour: when this part fails,
    transformers saves them itself and the workaround can go); :func:`hf.save_tokenizer`'s folder
    loads without that parse, into the same tokenizer."""
    from transformers import AutoTokenizer

    tok = tiny_tokenizer(tmp_path)
    tok.save_pretrained(tmp_path / "stock")
    stock_config = json.loads((tmp_path / "stock" / hf.TOKENIZER_CONFIG).read_text())
    assert "added_tokens_decoder" not in stock_config
    parses, stock = python_parses_of(
        tmp_path / "stock" / "tokenizer.json",
        lambda: AutoTokenizer.from_pretrained(tmp_path / "stock"),
    )
    assert parses == 1

    hf.save_tokenizer(tok, tmp_path / "ours")
    parses, ours = python_parses_of(
        tmp_path / "ours" / "tokenizer.json",
        lambda: AutoTokenizer.from_pretrained(tmp_path / "ours"),
    )
    assert parses == 0
    text = ["<s> hello [INST] world </s>", "world <pad> nope"]
    assert ours(text)["input_ids"] == stock(text)["input_ids"] == tok(text)["input_ids"]
    assert ours.backend_tokenizer.to_str() == stock.backend_tokenizer.to_str()
    assert ours.all_special_tokens == stock.all_special_tokens
    assert {i: str(t) for i, t in ours.added_tokens_decoder.items()} == {
        i: str(t) for i, t in stock.added_tokens_decoder.items()
    }


def test_another_backends_save_is_left_as_it_wrote_it(tmp_path):
    """Touch 3 is for the backend whose save drops the decoder: another tokenizer class (the
    mistral-common backend of a real checkpoint has no ``added_tokens_decoder`` of this shape) is
    saved by its own ``save_pretrained`` alone; None saves nothing."""

    class OtherBackend:
        def save_pretrained(self, out):
            (out / hf.TOKENIZER_CONFIG).write_text('{"tokenizer_class": "Other"}')

    hf.save_tokenizer(OtherBackend(), tmp_path)
    assert (tmp_path / hf.TOKENIZER_CONFIG).read_text() == '{"tokenizer_class": "Other"}'
    hf.save_tokenizer(None, tmp_path / "none")
    assert not (tmp_path / "none").exists()
