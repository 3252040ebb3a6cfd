"""mask.model.embedded.family: the embedded tiny model in another architecture family
(ablate.mask.tiny.tiny_config): the family's config at the arch sizes, a deterministic build,
ministral3 unchanged, a short pretraining of each family, the mask policies acting on it, the
family check of the study, and the schema refusing an unknown family or a key it cannot honour."""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch
from helpers import shipped_config

from ablate.core.config import (
    ConfigError,
    config_schema,
    schema_defaults,
    schema_error,
    validate_config,
)
from ablate.core.models.modeling import load_causal_lm
from ablate.core.training.pretraining import random_model
from ablate.mask import families, masks
from ablate.mask.tiny import FAMILIES, tiny_config, tiny_ministral3_config
from ablate.mask.training.entries import pretrain
from ablate.mask.training.gate import resolve_params

VOCAB = 64
SIZES = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, head_dim=8)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_families_are_the_schema_enum():
    node = config_schema()["$defs"]["embedded_model"]["properties"]["family"]
    assert tuple(node["enum"]) == FAMILIES and node["default"] == "ministral3"
    cfg = shipped_config("config.yaml")
    validate_config(cfg)
    assert cfg["mask"]["model"]["embedded"]["family"] == "ministral3"


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


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_policies_apply(family):
    """prefill_bidir lets a multi-token forward's early tokens see the later ones: the logits
    move from causal's everywhere but the last position (which sees everything either way)."""
    model = random_model(tiny_config(family, VOCAB, **SIZES), seed=0).eval()
    ids = torch.randint(3, VOCAB, (1, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        out = {
            p: model(**masks.policy_forward_kwargs(model, ids, mask, [3], p)).logits[0]
            for p in masks.POLICIES
        }
    assert not torch.allclose(out["causal"][:-1], out["prefill_bidir"][:-1], atol=1e-5)
    torch.testing.assert_close(out["causal"][-1], out["prefill_bidir"][-1])
    # prefix_bidir (a prompt of 3 tokens): the first token now sees the whole prompt
    assert not torch.allclose(out["causal"][0], out["prefix_bidir"][0], atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_pretrain_builds_the_family(family, tekken_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    words = "the cat sat on a mat and then the dog ran to the park".split()
    corpus.write_text(
        "".join(json.dumps({"text": " ".join(words[i:] + words[:i])}) + "\n" for i in range(12))
    )
    out = tmp_path / "pre"
    summary = pretrain(
        corpus=corpus,
        tokenizer_dir=tekken_dir,
        arch={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "head_dim": 4},
        params=resolve_params(
            {"max_steps": 3, "batch_size": 2, "max_seq_len": 16, "eval_size": 1, "eval_steps": 3},
            "pretrain",
        ),
        out_dir=out,
        family=family,
    )
    assert summary["steps_done"] == 3 and summary["family"] == family
    model = load_causal_lm(out / "final", config_check=families.check_config)
    assert model.config.model_type == family and model.config.num_hidden_layers == 1


def _embedded_study(family: str, **arch) -> dict:
    cfg = shipped_config("config.yaml")
    cfg["mask"]["model"]["embedded"].update(
        family=family, arch={**cfg["mask"]["model"]["embedded"]["arch"], **arch}
    )
    return cfg


@pytest.mark.parametrize("family", FAMILIES)
def test_study_check_takes_the_family(family):
    cfg = _embedded_study(family)
    validate_config(cfg)
    families.check_study(cfg["mask"], ["sdpa", masks.PREFIX_SDPA])
    with pytest.raises(families.UnprovenFamilyError, match="mask.model.embedded.family"):
        families.check_study(cfg["mask"], ["flash_attention_2"])


@pytest.mark.parametrize(
    ("family", "arch", "where", "says"),
    [
        ("gpt2", {}, "mask.model.embedded.family", "'gpt2' is not one of"),
        ("llama", {"sliding_window": 8}, "mask.model.embedded.arch.sliding_window", "'null'"),
    ],
)
def test_schema_refuses(family, arch, where, says):
    with pytest.raises(jsonschema.ValidationError) as info:
        validate_config(_embedded_study(family, **arch))
    message = schema_error(info.value)
    assert f"invalid config at {where}:" in message and says in message
