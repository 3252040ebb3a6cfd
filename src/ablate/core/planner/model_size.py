"""Model size and shape: parameters of a causal LM from its config, counted or built on the meta
device.

A config of a model type :data:`ARCHITECTURES` knows is counted by arithmetic, without torch or
transformers (the plan jobs read tables and must start in seconds: importing transformers' model
code took 10-25 s of each on 2 cores); any other is built on the meta device."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    """What the memory check needs of a model besides its size (:mod:`.memory_need`)."""

    params: int
    hidden: int  # hidden size: activations per token and layer scale with it
    layers: int  # decoder layers
    layer_params: int  # the largest decoder layer (a sharded recipe gathers one at a time)
    root_params: int  # the rest: embeddings, lm_head, final norm (the sharded recipe's root)


_SHAPE_CACHE: dict[str, ModelShape] = {}

#: The keys a counted config must state (no class default is assumed for them).
SIZES = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
)

#: Per model type the arithmetic knows: which projections carry a bias (``True``, or the config
#: key that switches it), the norms of a layer and of a head (absent: 2 and none), and the
#: defaults of transformers' config class for keys a config.json may leave out (None: derived).
#: tests/core/planner/test_model_size.py holds each to the meta-device build and those defaults.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "llama": {
        "qkv_bias": "attention_bias",
        "o_bias": "attention_bias",
        "mlp_bias": "mlp_bias",
        "defaults": {
            "tie_word_embeddings": False,
            "attention_bias": False,
            "mlp_bias": False,
            "head_dim": None,
            "num_key_value_heads": None,
        },
    },
    "mistral": {
        "defaults": {"tie_word_embeddings": False, "head_dim": None, "num_key_value_heads": 8},
    },
    "ministral3": {
        "defaults": {"tie_word_embeddings": False, "head_dim": 128, "num_key_value_heads": 8},
    },
    "qwen2": {
        "qkv_bias": True,
        # Qwen2Config declares no head_dim: hidden_size / heads unless a config states one
        "defaults": {"tie_word_embeddings": False, "head_dim": None, "num_key_value_heads": 32},
    },
    "gemma3_text": {
        "qkv_bias": "attention_bias",
        "o_bias": "attention_bias",
        "norms": 4,  # input, post-attention, pre- and post-feedforward
        "head_norms": 2,  # q_norm, k_norm
        "defaults": {
            "tie_word_embeddings": True,
            "attention_bias": False,
            "head_dim": 256,
            "num_key_value_heads": 4,
        },
    },
}


def count_params(text_config: Any) -> int:
    """Parameters of the causal LM of a config (dict with model_type, or PretrainedConfig)."""
    return model_shape(text_config).params


def counted_shape(config: dict[str, Any]) -> ModelShape | None:
    """The :class:`ModelShape` of a config dict by arithmetic (tied embeddings counted once);
    None where :data:`ARCHITECTURES` lacks its type or it leaves a key of :data:`SIZES` out."""
    arch = ARCHITECTURES.get(config.get("model_type"))
    if arch is None or "text_config" in config or any(config.get(k) is None for k in SIZES):
        return None
    c = {**arch["defaults"], **config}
    hidden, heads, inner = c["hidden_size"], c["num_attention_heads"], c["intermediate_size"]
    head_dim = c["head_dim"] or hidden // heads
    q, kv = heads * head_dim, (c["num_key_value_heads"] or heads) * head_dim

    def bias(part: str) -> bool:
        on = arch.get(part, False)
        return bool(c[on]) if isinstance(on, str) else on

    attn = (
        2 * hidden * q + 2 * hidden * kv + bias("qkv_bias") * (q + 2 * kv) + bias("o_bias") * hidden
    )
    mlp = 3 * hidden * inner + bias("mlp_bias") * (2 * inner + hidden)
    layer = attn + mlp + arch.get("norms", 2) * hidden + arch.get("head_norms", 0) * head_dim
    embed = c["vocab_size"] * hidden
    root = embed + hidden + (0 if c["tie_word_embeddings"] else embed)
    layers = c["num_hidden_layers"]
    return ModelShape(
        params=root + layers * layer,
        hidden=hidden,
        layers=layers,
        layer_params=layer,
        root_params=root,
    )


def model_shape(text_config: Any) -> ModelShape:
    """The :class:`ModelShape` of the causal LM of a config (dict or PretrainedConfig)."""
    as_dict = text_config if isinstance(text_config, dict) else text_config.to_dict()
    counted = counted_shape(as_dict)
    return counted if counted is not None else built_shape(text_config)


def built_shape(text_config: Any) -> ModelShape:
    """The :class:`ModelShape` of the causal LM of a config, built on the meta device and cached
    (the 3B shape takes ~2 s to build); the decoder layers are its longest ``ModuleList``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(text_config, dict):
        kw = dict(text_config)
        text_config = AutoConfig.for_model(kw.pop("model_type"), **kw)
    text = text_config.get_text_config()
    if text is not text_config:  # a VLM: its text model keeps the top-level tying (modeling.py)
        text = copy.deepcopy(text)
        text.tie_word_embeddings = getattr(
            text_config, "tie_word_embeddings", text.tie_word_embeddings
        )
    text_config = text
    key = text_config.to_json_string(use_diff=False)
    if key not in _SHAPE_CACHE:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(text_config)
        lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
        layers = max(lists, key=len) if lists else []
        sizes = [sum(p.numel() for p in layer.parameters()) for layer in layers]
        total = sum(p.numel() for p in model.parameters())
        _SHAPE_CACHE[key] = ModelShape(
            params=total,
            hidden=int(text_config.hidden_size),
            layers=len(sizes),
            layer_params=max(sizes, default=0),
            root_params=total - sum(sizes),
        )
    return _SHAPE_CACHE[key]


def _shape_of_file(config_json: str | os.PathLike) -> ModelShape:
    """The :class:`ModelShape` of the model whose config.json this is."""
    counted = counted_shape(json.loads(Path(config_json).read_text()))
    if counted is not None:
        return counted
    from transformers import AutoConfig

    return built_shape(AutoConfig.from_pretrained(str(Path(config_json).parent)))


def params_from_dir(path: str | os.PathLike | None) -> float | None:
    """Parameters of the model saved in a directory (its config.json); None without one."""
    cfg = Path(path) / "config.json" if path else None
    if cfg is None or not cfg.is_file():
        return None
    return float(_shape_of_file(cfg).params)


def params_of_hub_model(
    path: str, revision: str | None, models: dict[str, dict[str, Any]], ref_path: str
) -> tuple[float | None, str]:
    """:func:`shape_of_hub_model`'s parameter count."""
    shape, source = shape_of_hub_model(path, revision, models, ref_path)
    return (None if shape is None else float(shape.params)), source


def shape_of_hub_model(
    path: str, revision: str | None, models: dict[str, dict[str, Any]], ref_path: str
) -> tuple[ModelShape | None, str]:
    """Shape of a model named by a local directory or a hub id, offline: its config.json, the
    local HF cache, or the `models:` entry of the measurements file; else None and why."""
    if (Path(path) / "config.json").exists():
        return _shape_of_file(Path(path) / "config.json"), f"{path}/config.json"
    try:  # a hub id already in the local HF cache
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json", revision=revision)
    except (OSError, ValueError):  # not a valid repo id
        cached = None
    if isinstance(cached, str):
        return _shape_of_file(cached), f"{path} config.json (local HF cache)"
    if path in models:
        spec = models[path]
        return model_shape(spec["text_config"]), f"{spec['source']} [{Path(ref_path).name}]"
    return None, (
        f"model size of {path!r} unknown offline: no config.json there, none in the HF cache, and "
        f"no entry under 'models:' in {ref_path}"
    )
