"""mask.model.embedded.family: the embedded tiny model in another architecture family, through
the study: a short pretraining of each family, the mask policies acting on it, the family check
of the study, and the schema refusing an unknown family or a key it cannot honour (the family's
config itself, ablate.mask.tiny: tests/mask/test_tiny.py)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch
from helpers import shipped_config

from ablate.core.config import (
    config_schema,
    schema_error,
    validate_config,
)
from ablate.core.models.modeling import load_causal_lm
from ablate.core.training.pretraining import random_model
from ablate.mask import families, masks
from ablate.mask.tiny import FAMILIES, tiny_config
from ablate.mask.training.entries import pretrain
from ablate.mask.training.params import resolve_params

VOCAB = 64
SIZES = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, head_dim=8)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_families_are_the_schema_enum():
    node = config_schema()["$defs"]["embedded_model"]["properties"]["family"]
    assert tuple(node["enum"]) == FAMILIES and node["default"] == "ministral3"
    cfg = shipped_config("config.yaml")
    validate_config(cfg)
    assert cfg["mask"]["model"]["embedded"]["family"] == "ministral3"


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
