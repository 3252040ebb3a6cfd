"""ablate.core.training.pretraining: the one pretraining of both studies' tiny models."""

from __future__ import annotations

import json

import torch
from helpers import synthetic_rows

from ablate.core.training import pretraining
from ablate.mask import sft_data, tiny
from ablate.mask.split_sdpa import PREFIX_SDPA
from ablate.mask.training.entries import pretrain
from ablate.mask.training.params import resolve_params
from ablate.upstream import hf

MICRO = {"max_steps": 2, "batch_size": 2, "max_seq_len": 32, "eval_size": 2, "eval_steps": 0}


def test_both_studies_pretrain_through_one_function(
    bridge_cards, tekken_dir, tmp_path, monkeypatch
):
    """The mask study's embedded model and the bridge's models are built and trained by the one
    pretraining: each summary states the same sizes, measured there."""
    built = []
    build = pretraining.build_model
    monkeypatch.setattr(pretraining, "build_model", lambda *a: built.append(a) or build(*a))
    corpus = tmp_path / "corpus.jsonl"
    rows = synthetic_rows(20, seed=1)
    corpus.write_text(
        "".join(json.dumps({"text": sft_data.format_prompt(r) + r["output"]}) + "\n" for r in rows)
    )
    arch = {"num_hidden_layers": 1, "hidden_size": 32, "intermediate_size": 64, "head_dim": 8}
    mask = pretrain(
        corpus=corpus,
        tokenizer_dir=tekken_dir,
        arch=arch,
        params=resolve_params(MICRO, "pretrain"),
        out_dir=tmp_path / "pre",
    )
    bridge = json.loads((bridge_cards["source"].parent / "summary.json").read_text())
    assert len(built) == 1  # the mask study's; the bridge's fixture built its models before
    for summary in (mask, bridge):
        assert summary["n_train_blocks"] > 0 and summary["n_eval_blocks"] == 2
        assert summary["n_params"] > 0 and summary["policy"] == "causal"


def test_build_model_sets_dtype_and_attention_through_public_api():
    """The model is built in its dtype with its attention backend (a study's registered one
    too) through ``from_config``'s arguments; its weights are the fp32 build's, cast (so building
    in the dtype, in place of casting after, changed no pretrained weight on this CPU)."""
    config = tiny.tiny_config("ministral3", vocab_size=256, num_hidden_layers=1)
    p = {"seed": 3, "attn_implementation": PREFIX_SDPA, "model_dtype": "bfloat16"}
    model = pretraining.build_model(config, resolve_params(p, "pretrain"), "cpu")
    assert model.dtype == torch.bfloat16 and model.config._attn_implementation == PREFIX_SDPA
    assert model.config.use_cache is False
    fp32 = pretraining.build_model(
        config, resolve_params({**p, "model_dtype": "float32"}, "pretrain"), "cpu"
    )
    cast = {k: v.to(torch.bfloat16) for k, v in fp32.state_dict().items()}
    assert all(torch.equal(v, cast[k]) for k, v in model.state_dict().items())


def test_blocks_split_held_out_by_seed(tokenizer, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(" ".join(f"d{i}w{j}" for j in range(20)) + "\n" for i in range(12)))
    p = resolve_params({"max_seq_len": 16, "eval_size": 3, "seed": 0}, "pretrain")
    train, held = pretraining.blocks_split(tokenizer, corpus, p)
    again, held_again = pretraining.blocks_split(tokenizer, corpus, p)
    ids = lambda ds: [tuple(ds[i]["input_ids"]) for i in range(len(ds))]  # noqa: E731
    assert len(held) == 3 and ids(held) == ids(held_again) and ids(train) == ids(again)
    assert not set(ids(train)) & set(ids(held)) and len(set(ids(train) + ids(held))) > 6
    _, other = pretraining.blocks_split(
        tokenizer, corpus, resolve_params({**p.as_dict(), "seed": 1}, "pretrain")
    )
    assert ids(other) != ids(held)


def test_random_model_keeps_the_backend_its_config_names():
    """A config that names its attention backend (a benchmark's flex_attention row) builds a
    model that runs that backend: ``from_config(attn_implementation=None)`` would drop it for
    transformers' default (sdpa), and the row would time another kernel under its name."""
    config = tiny.tiny_config("ministral3", vocab_size=256, num_hidden_layers=1)
    config._attn_implementation = "eager"
    assert hf.attn_implementation(pretraining.random_model(config, seed=0).config) == "eager"
    chosen = pretraining.random_model(config, seed=0, attn_implementation=PREFIX_SDPA)
    assert hf.attn_implementation(chosen.config) == PREFIX_SDPA
