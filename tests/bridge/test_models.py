"""The bridge's models (ablate.bridge.models): KV-cache size, a card of another commit than the run
id, one tokenizer on both sides refused."""

from __future__ import annotations

import pytest

from ablate.bridge import families, layout, models


def test_kv_cache_size_from_llama_3_1_8b_config():
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=16,  # irrelevant to the cache; small so the config is cheap
    )
    assert models.kv_cache_mb_per_token(cfg, "bfloat16") == pytest.approx(0.125)
    assert models.kv_cache_mb_per_token(cfg, "float32") == pytest.approx(0.25)
    # the seed's constant 0.5 MB/token was 4x too high
    assert models.kv_cache_mb_per_token(cfg, "bfloat16") * 4 == pytest.approx(0.5)


def test_a_card_of_another_commit_than_the_run_id_is_refused(tmp_path):
    from ablate.bridge import models
    from ablate.core.outputs import io

    card = tmp_path / layout.PATTERNS["card"].format(role="source")
    io.write_json(
        card,
        {
            "source": "pretrained",
            "id": "org/m",
            "path": "org/m",
            "revision": "c" * 40,
            "tokenizer": "org/m",
        },
    )
    models.check_pinned({"source": str(card)}, {"source": {"revision": "c" * 40}})
    with pytest.raises(ValueError) as info:
        models.check_pinned({"source": str(card)}, {"source": {"revision": "a" * 40}})
    lock = str(tmp_path / "hub_revisions.json")  # the results folder of the card
    assert all(s in str(info.value) for s in ("c" * 40, "a" * 40, lock))
    models.check_pinned({"source": str(card)}, {"source": {"revision": "main"}})  # unresolved


def test_same_tokenizer_on_both_sides_is_refused(bridge_cards):
    from ablate.bridge import models

    _, src_tok = models.load(bridge_cards["source"])
    _, tgt_tok = models.load(bridge_cards["target"])
    models.check_distinct_tokenizers(src_tok, tgt_tok)  # the embedded pair: two tokenizers
    with pytest.raises(families.ModelSetupError, match="same tokenizer"):
        models.check_distinct_tokenizers(src_tok, src_tok)
