"""The embedded tiny model's config (ablate.mask.tiny.tiny_config) in each architecture family:
the family's config at the schema's arch sizes, a deterministic build per seed, ministral3 as it
was, sliding windows where the family has them and refusals naming the key where not."""

from __future__ import annotations

import pytest
import torch

from ablate.core.config import ConfigError, schema_defaults
from ablate.core.training.pretraining import random_model
from ablate.mask import families
from ablate.mask.tiny import FAMILIES, tiny_config, tiny_ministral3_config

VOCAB = 64
SIZES = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, head_dim=8)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("family", FAMILIES)
def test_config_has_the_family_and_the_arch_sizes(family):
    arch = schema_defaults("$defs/embedded_model/properties/arch")
    config = tiny_config(family)
    assert config.model_type == family
    for key, value in arch.items():
        assert getattr(config, key, None) == value, key  # llama has no sliding_window: None
    assert (config.vocab_size, config.bos_token_id, config.eos_token_id) == (131072, 1, 2)
    assert config.pad_token_id == 11
    families.check_config(config, "sdpa")  # a proven family
    # a non-default head_dim reaches the model's projections
    model = random_model(tiny_config(family, VOCAB, **SIZES), seed=0)
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.out_features == 4 * 8 and attn.k_proj.out_features == 2 * 8


def test_ministral3_is_unchanged():
    assert tiny_config().to_dict() == tiny_ministral3_config().to_dict()
    assert tiny_config("ministral3", VOCAB, **SIZES).to_dict() == (
        tiny_ministral3_config(VOCAB, **SIZES).to_dict()
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_build_is_deterministic_per_seed(family):
    config = tiny_config(family, VOCAB, **SIZES)
    a, b, c = (random_model(config, seed=s).state_dict() for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_sliding_window():
    qwen = tiny_config("qwen2", VOCAB, **SIZES, sliding_window=4)
    assert qwen.sliding_window == 4 and set(qwen.layer_types) == {"sliding_attention"}
    qwen = tiny_config("qwen2", VOCAB, **SIZES)
    assert qwen.sliding_window is None and set(qwen.layer_types) == {"full_attention"}
    with pytest.raises(ConfigError, match=r"mask\.model\.embedded\.arch\.sliding_window"):
        tiny_config("llama", sliding_window=4)
    with pytest.raises(ConfigError, match=r"mask\.model\.embedded\.family"):
        tiny_config("gpt2")
