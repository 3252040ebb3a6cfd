"""The embedded bridge models' families, default architectures, pretraining and config defaults.

Plain data, no torch, so the planner reads them without importing :mod:`ablate.bridge.models`
(5.9 s of torch on a loaded 2-core box; tests/bridge/test_plan.py holds the planner to no torch).
"""

from __future__ import annotations

from typing import Any

#: Default architecture per family; a config's ``arch`` overrides keys of these.
FAMILIES: dict[str, dict[str, Any]] = {
    "mistral": {
        "tokenizer": {"type": "sentencepiece_bpe", "vocab_size": 600},
        "hidden_size": 64,
        "intermediate_size": 192,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
    },
    "llama": {
        "tokenizer": {"type": "byte_bpe", "vocab_size": 900},
        "hidden_size": 80,
        "intermediate_size": 224,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 20,
    },
}

#: Pretraining parameters (keys of the schema's pretrain_params) the bridge models use
#: unless the config's ``pretrain`` overrides them; sized for <= ~60 s on one CPU thread.
PRETRAIN: dict[str, Any] = {
    "learning_rate": 5e-3,
    "weight_decay": 0.0,
    "warmup_ratio": 0.05,
    "lr_scheduler": "cosine",
    "max_seq_len": 128,
    "batch_size": 16,
    "max_steps": 700,
    "eval_size": 8,
    "eval_steps": 350,
    "save_steps": 0,
    "logging_steps": 50,
    "seed": 0,
}


class ModelSetupError(ValueError):
    pass


def family_arch(family: str, arch: dict | None) -> dict[str, Any]:
    """An embedded model's architecture: its family's, with ``arch``'s keys over it."""
    if family not in FAMILIES:
        raise ModelSetupError(
            f"unknown model family {family!r}; the embedded bridge knows {', '.join(FAMILIES)}"
        )
    merged = {**FAMILIES[family], **(arch or {})}
    merged["tokenizer"] = {**FAMILIES[family]["tokenizer"], **(arch or {}).get("tokenizer", {})}
    return merged


#: transformers config fields the embedded models set unless ``arch`` does
CONFIG_DEFAULTS: dict[str, Any] = {"max_position_embeddings": 512, "tie_word_embeddings": True}
