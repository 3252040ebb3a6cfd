"""Model size and shape (ablate.core.planner.model_size): parameters of a causal LM from its
config, built on the meta device, and where an offline plan finds a named model's config."""

from __future__ import annotations

from ablate.core.planner.model_size import (
    ModelShape,
    count_params,
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
