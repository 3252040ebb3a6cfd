"""Model size and shape (ablate.core.planner.model_size): parameters of a causal LM from its
config, counted or built on the meta device, and where an offline plan finds a named model's
config."""

from __future__ import annotations

import yaml

from ablate.core.planner.model_size import (
    ARCHITECTURES,
    SIZES,
    ModelShape,
    built_shape,
    count_params,
    counted_shape,
    model_shape,
    params_from_dir,
    params_of_hub_model,
    shape_of_hub_model,
)

#: a tiny Llama: embeddings 100 x 16; a layer: q, k, v, o 4 x 16 x 16 + gate, up, down 3 x 16 x 32
#: + two norms 2 x 16 = 2592; the final norm 16; lm_head 100 x 16 unless tied
TINY = {
    "model_type": "llama",
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "vocab_size": 100,
    "tie_word_embeddings": False,
}


def test_the_shape_counts_layers_root_and_tied_weights_once():
    assert model_shape(TINY) == ModelShape(
        params=1600 + 2 * 2592 + 16 + 1600, hidden=16, layers=2, layer_params=2592, root_params=3216
    )
    tied = dict(TINY, tie_word_embeddings=True)
    assert count_params(tied) == 1600 + 2 * 2592 + 16
    assert model_shape(tied).root_params == 1616


def test_a_model_is_found_in_its_folder_or_the_measurements_file_or_said_unknown(tmp_path):
    from transformers import AutoConfig

    kw = dict(TINY)
    folder = tmp_path / "model"
    AutoConfig.for_model(kw.pop("model_type"), **kw).save_pretrained(folder)
    assert params_from_dir(folder) == 8400.0
    assert params_from_dir(tmp_path) is None and params_from_dir(None) is None
    shape, source = shape_of_hub_model(str(folder), None, {}, "config/gpu_measurements.yaml")
    assert shape.params == 8400 and source == f"{folder}/config.json"
    models = {"someorg/tiny-offline": {"text_config": TINY, "source": "its config.json, 2026-05"}}
    assert params_of_hub_model("someorg/tiny-offline", None, models, "config/m.yaml") == (
        8400.0,
        "its config.json, 2026-05 [m.yaml]",
    )
    assert params_of_hub_model("someorg/unknown-7b", None, models, "config/m.yaml") == (
        None,
        "model size of 'someorg/unknown-7b' unknown offline: no config.json there, none in the HF "
        "cache, and no entry under 'models:' in config/m.yaml",
    )


def _configs() -> list[dict]:
    """Every config the planner counts: the measurements file's models, each embedded family of
    both studies, and per known type its sizes alone (its class's defaults) and each bias on."""
    from ablate.bridge.families import FAMILIES as BRIDGE_FAMILIES
    from ablate.bridge.plan import embedded_config
    from ablate.mask.tiny import FAMILIES, tiny_params

    with open("config/gpu_measurements.yaml") as f:
        found = [m["text_config"] for m in yaml.safe_load(f)["models"].values()]
    found += [tiny_params(family) for family in FAMILIES]
    found += [embedded_config({"family": f}) for f in BRIDGE_FAMILIES]
    for model_type, arch in ARCHITECTURES.items():
        sizes = {k: TINY.get(k, 2) for k in SIZES}
        found.append({"model_type": model_type, **sizes})
        for key in {v for v in arch.values() if isinstance(v, str)}:
            found.append({"model_type": model_type, **sizes, key: True})
    return found


def test_the_arithmetic_counts_what_the_meta_device_build_counts():
    """Each config of :func:`_configs` (two layers: the arithmetic is per layer, and the meta
    build of 26 takes seconds) counted equals built, as it is (a key left out: its class's
    default, Gemma 3 ties its embeddings, Llama does not) and with its tying the other way; a
    model type the arithmetic does not know is built."""
    configs = _configs()
    assert {c["model_type"] for c in configs} >= set(ARCHITECTURES)
    for config in configs:
        for tied in ({}, {"tie_word_embeddings": not config.get("tie_word_embeddings", True)}):
            one = {**config, "num_hidden_layers": 2, **tied}
            assert counted_shape(one) == built_shape(one), one
    gpt2 = {"model_type": "gpt2", "n_embd": 16, "n_layer": 2, "n_head": 2, "vocab_size": 100}
    assert counted_shape(gpt2) is None and model_shape(gpt2) == built_shape(gpt2)
