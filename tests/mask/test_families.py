"""A model family whose mask policies no audit has proven is refused with one line naming its
model_type and the test that would prove it (ablate.mask.families): at parse time where the
config can be read, and at load before the weights are read. The proofs themselves:
tests/mask/test_masks.py (test_family_proven, test_family_fast, test_registry_matches_the_audit).
"""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import FAMILY_OVERLAYS, MASK_CONFIG_SETS, ROOT

from ablate.core import planner
from ablate.core.models.modeling import load_causal_lm
from ablate.mask import families

UNPROVEN = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 8, "vocab_size": 16}


def test_unproven_family_is_refused_in_one_line():
    with pytest.raises(families.UnprovenFamilyError) as exc:
        families.check("gpt2")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "model_type 'gpt2'" in msg
    assert "pytest 'tests/mask/test_masks.py::test_family_proven[gpt2]'" in msg
    assert "ablate.mask.families.PROVEN" in msg and "FAMILIES" in msg  # what to do


def test_unproven_backend_is_refused():
    families.check("gemma2", ["eager"])
    with pytest.raises(families.UnprovenFamilyError, match=r"proven on eager only .* 'sdpa'"):
        families.check("gemma2", ["sdpa"])
    with pytest.raises(families.UnprovenFamilyError, match="'flash_attention_2'"):
        families.check("llama", ["flash_attention_2"])
    families.check("ministral3", ["flex_attention", "sdpa_prefix_split"])


def test_overriding_config_keys_are_refused():
    ok = {"model_type": "gemma3_text", "use_bidirectional_attention": False}
    families.check_config(ok, "sdpa")
    with pytest.raises(families.UnprovenFamilyError, match="use_bidirectional_attention: True"):
        families.check_config({**ok, "use_bidirectional_attention": True}, "sdpa")
    wrapper = {"model_type": "mistral3", "text_config": {"model_type": "ministral3"}}
    families.check_config(wrapper, "sdpa")
    with pytest.raises(families.UnprovenFamilyError, match="is_causal: False"):
        families.check_config({**wrapper, "text_config": {"is_causal": False}}, "sdpa")


def test_load_refuses_before_reading_weights(tmp_path):
    """The loader's config_check runs on config.json before any weight file is read: the folder
    has no weights at all, and the refusal (not a missing-weights error) is what comes back."""
    (tmp_path / "config.json").write_text(json.dumps(UNPROVEN))
    with pytest.raises(families.UnprovenFamilyError, match="model_type 'gpt2'"):
        load_causal_lm(tmp_path, config_check=families.check_config)


def _study(path: str) -> dict:
    return {"model": {"source": "pretrained", "path": path, "revision": None}}


def test_study_check_reads_the_model_offline(tmp_path):
    """At parse time: a local folder's config.json, a hub id's 'models:' entry of the
    measurements file; an id found nowhere offline is left to the loader."""
    (tmp_path / "config.json").write_text(json.dumps(UNPROVEN))
    with pytest.raises(families.UnprovenFamilyError, match=rf"{tmp_path}.*model_type 'gpt2'"):
        families.check_study(_study(str(tmp_path)), ["sdpa"])
    measurements = "config/gpu_measurements.yaml"
    families.check_study(
        _study("mistralai/Ministral-3-3B-Instruct-2512"),
        ["flex_attention"],
        measurements=measurements,
    )
    families.check_study(
        _study("mistralai/Ministral-8B-Instruct-2410"),
        ["flex_attention"],
        measurements=measurements,
    )
    with pytest.raises(families.UnprovenFamilyError, match="'flex_attention'"):
        families.check_study(
            _study("meta-llama/Llama-3.2-3B-Instruct"),
            ["flex_attention"],
            measurements=measurements,
        )
    families.check_study(_study("nobody/not-in-any-cache"), ["sdpa"], measurements=measurements)
    families.check_study({"model": {"source": "embedded"}}, ["sdpa", "sdpa_prefix_split"])


@pytest.mark.parametrize("name", FAMILY_OVERLAYS)
def test_other_family_overlays_pass_the_parse_time_check_offline(name):
    """config/<family>.yaml over config/ministral3b.yaml: its model is read offline from the
    'models:' entry (as in a dry run, where the hub is not asked), its family is proven, and
    every backend the study runs (the finetunes', the evaluations', the probe's) is one its
    audit covers (not flex_attention: the overlay sets sdpa_prefix_split)."""
    from ablate.mask import variants as mask_variants

    path, model_type, _ = FAMILY_OVERLAYS[name]
    config = planner.load_config([ROOT / "config" / "ministral3b.yaml", ROOT / "config" / name])
    measurements = ROOT / config["plan"]["measurements"]
    models = yaml.safe_load(measurements.read_text())["models"]
    found = families.read_model_config(path, None, models)
    assert found is not None and found[1] == f"'models:' entry of {path}"
    assert found[0]["model_type"] == model_type
    backends = families.study_backends(mask_variants.variants_of(config))
    assert "flex_attention" not in backends
    families.check_study(config["mask"], backends, measurements=measurements)
    with pytest.raises(families.UnprovenFamilyError, match="'flex_attention'"):
        families.check_study(config["mask"], ["flex_attention"], measurements=measurements)


def test_embedded_pretraining_backend_is_checked():
    embedded = {"source": "embedded", "embedded": {"pretrain": {"attn_implementation": "x"}}}
    with pytest.raises(families.UnprovenFamilyError, match="the embedded model .* 'x'"):
        families.check_study({"model": embedded}, ["sdpa"])


@pytest.mark.parametrize("names", MASK_CONFIG_SETS, ids=" ".join)
def test_every_shipped_config_passes_the_parse_time_check(names):
    """What the workflow checks when it is parsed, on each shipped config: a backend a config
    asks for that its family's audit does not cover (Ministral-8B's mistral under the packed
    finetune's flex_attention, before flex was audited for mistral) stops its every dry run."""
    from ablate.mask import models
    from ablate.mask import variants as mask_variants

    config = planner.load_config([ROOT / "config" / n for n in names])
    backends = families.study_backends(mask_variants.variants_of(config))
    for lm in models.names(config) or [None]:  # each model of a multi-model config
        families.check_study(
            models.model_config(config, lm)["mask"] if lm else config["mask"],
            backends,
            measurements=ROOT / config["plan"]["measurements"],
        )
