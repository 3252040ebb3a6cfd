"""Model size and shape: parameters of a causal LM from its config, built on the meta device."""

from __future__ import annotations

import copy
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


def count_params(text_config: Any) -> int:
    """Parameters of the causal LM of a config (dict with model_type, or PretrainedConfig)."""
    return model_shape(text_config).params


def model_shape(text_config: Any) -> ModelShape:
    """The :class:`ModelShape` of the causal LM of a config (dict with model_type, or
    PretrainedConfig).

    Built on the meta device (no memory; tied weights counted once) and cached by the config's
    JSON: the 3B shape takes ~2 s to build. The decoder layers are the model's longest
    ``ModuleList``.
    """
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


def params_from_dir(path: str | os.PathLike | None) -> float | None:
    """Parameters of the model saved in a directory (its config.json); None without one."""
    cfg = Path(path) / "config.json" if path else None
    if cfg is None or not cfg.is_file():
        return None
    from transformers import AutoConfig

    return float(count_params(AutoConfig.from_pretrained(str(cfg.parent))))


def params_of_hub_model(
    path: str, revision: str | None, models: dict[str, dict[str, Any]], ref_path: str
) -> tuple[float | None, str]:
    """Size of a model named by a local directory or a hub id, offline (:func:`shape_of_hub_model`);
    else None and why."""
    shape, source = shape_of_hub_model(path, revision, models, ref_path)
    return (None if shape is None else float(shape.params)), source


def shape_of_hub_model(
    path: str, revision: str | None, models: dict[str, dict[str, Any]], ref_path: str
) -> tuple[ModelShape | None, str]:
    """Shape of a model named by a local directory or a hub id, offline: its config.json, the
    local HF cache, or the `models:` entry of the measurements file; else None and why."""
    from transformers import AutoConfig

    if (Path(path) / "config.json").exists():
        return model_shape(AutoConfig.from_pretrained(path)), f"{path}/config.json"
    try:  # a hub id already in the local HF cache
        cfg = AutoConfig.from_pretrained(path, revision=revision, local_files_only=True)
        return model_shape(cfg), f"{path} config.json (local HF cache)"
    except (OSError, ValueError):
        pass
    if path in models:
        spec = models[path]
        return model_shape(spec["text_config"]), f"{spec['source']} [{Path(ref_path).name}]"
    return None, (
        f"model size of {path!r} unknown offline: no config.json there, none in the HF cache, and "
        f"no entry under 'models:' in {ref_path}"
    )
