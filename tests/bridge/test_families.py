"""The embedded bridge models' families (ablate.bridge.families): a config's ``arch`` over its
family's defaults, the tokenizer's keys merged, an unknown family refused naming the known ones."""

from __future__ import annotations

import pytest

from ablate.bridge import families


def test_arch_keys_override_the_familys_and_the_tokenizer_merges():
    a = families.family_arch("llama", {"hidden_size": 96, "tokenizer": {"pad_to_size": True}})
    assert a["hidden_size"] == 96 and a["num_hidden_layers"] == 2
    assert a["tokenizer"] == {"type": "byte_bpe", "vocab_size": 900, "pad_to_size": True}
    assert families.FAMILIES["llama"]["hidden_size"] == 80  # the defaults are not changed


def test_an_unknown_family_is_refused_naming_the_known_ones():
    with pytest.raises(
        families.ModelSetupError, match="unknown model family 'gpt'.*mistral, llama"
    ):
        families.family_arch("gpt", None)
