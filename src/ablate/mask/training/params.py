"""Training parameters (defaults = the seed study), their resolution, dtype rules, errors."""

from __future__ import annotations

import os
from typing import Any

import torch

from ablate.mask import masks

IGNORE_INDEX = -100

#: SFT hyperparameters; defaults are the seed study's (stage 3), plateau defaults its stage 5.
FINETUNE_DEFAULTS: dict[str, Any] = dict(
    learning_rate=2e-5,
    weight_decay=0.1,
    warmup_ratio=0.03,
    lr_scheduler="cosine",
    optim="adafactor",
    max_grad_norm=1.0,
    bf16="auto",  # bf16 compute: True on a bf16-capable GPU, else False
    model_dtype="auto",  # dtype of the model's weights: bfloat16 when bf16 is on, else float32
    master_weights="auto",  # fp32 master weights + fp32 grad accumulation in the optimizer for 16-bit weights
    save_dtype="auto",  # final checkpoint dtype: bfloat16 when bf16 is on, else float32
    # sdpa, except prefix_bidir runs as causal flash + non-causal prompt blocks (docs/benchmarks.md)
    attn_implementation=masks.PREFIX_SDPA,
    max_seq_len=1024,
    batch_size=1,
    grad_accum=16,
    max_steps=1200,
    eval_size=200,  # held-out pairs (split by seed); 0 disables eval
    eval_steps=100,
    eval_batch_size=8,
    save_steps=100,
    save_total_limit=2,
    logging_steps=10,
    gradient_checkpointing=False,
    seed=0,
    # stop rules (0 / null disables a rule)
    no_learning_steps=200,
    no_learning_min_gain=0.01,
    plateau_patience=8,
    plateau_min_delta=0.001,
    plateau_min_steps=3000,
    # leakage gate
    probe_size=64,
    probe_threshold=None,  # None: ablate.mask.leakage.DEFAULT_THRESHOLD
    probe_batch_size=8,
    keep_checkpoints=False,  # keep out_dir/checkpoints after the final save
)

#: Causal pretraining of the embedded tiny model (the embedded config overrides these).
PRETRAIN_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in FINETUNE_DEFAULTS.items() if not k.startswith("probe_")},
    **dict(
        attn_implementation="sdpa",  # causal only
        learning_rate=1e-3,
        weight_decay=0.01,
        warmup_ratio=0.05,
        optim="adamw_torch",
        max_seq_len=256,
        batch_size=8,
        grad_accum=1,
        max_steps=1000,
        eval_size=8,  # held-out packed blocks
        no_learning_steps=0,
        plateau_patience=0,
    ),
}


class TrainingError(RuntimeError):
    pass


class TrainingConfigError(TrainingError, ValueError):
    pass


class LeakageGateError(TrainingError):
    pass


def resolve_params(params: dict | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``params``; an unknown key is an error (a typo must not be ignored)."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise TrainingConfigError(
            f"unknown training parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(defaults))}"
        )
    out = {**defaults, **params}
    for key in ("max_steps", "batch_size", "grad_accum", "max_seq_len", "logging_steps"):
        if not isinstance(out[key], int) or out[key] < 1:
            raise TrainingConfigError(
                f"training parameter {key} must be an integer >= 1, got {out[key]!r}"
            )
    for key in ("eval_size", "eval_steps", "save_steps", "no_learning_steps", "plateau_patience"):
        if out.get(key) is not None and (not isinstance(out[key], int) or out[key] < 0):
            raise TrainingConfigError(
                f"training parameter {key} must be an integer >= 0, got {out[key]!r}"
            )
    return out


def _bf16_enabled(setting: Any) -> bool:
    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(setting)


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise TrainingConfigError(f"{name!r} is not a torch dtype (e.g. float32, bfloat16)")
    return dtype


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _model_dtype(p: dict[str, Any]) -> torch.dtype:
    if p["model_dtype"] == "auto":
        # the fp32-master optimizer frees each .grad in a hook, which DDP's reducer cannot follow:
        # multi-process runs keep fp32 weights under bf16 autocast instead
        return torch.bfloat16 if _bf16_enabled(p["bf16"]) and not _distributed() else torch.float32
    return _dtype(p["model_dtype"])


def _master_weights(p: dict[str, Any]) -> bool:
    if p["master_weights"] == "auto":
        return _model_dtype(p).itemsize < 4
    if p["master_weights"] and _distributed():
        raise TrainingConfigError(
            "master_weights: true is single-process only (WORLD_SIZE > 1 here); "
            "use model_dtype: float32 with bf16 for multi-GPU runs"
        )
    return bool(p["master_weights"])


def _save_dtype(p: dict[str, Any]) -> torch.dtype:
    if p["save_dtype"] == "auto":
        return torch.bfloat16 if _bf16_enabled(p["bf16"]) else torch.float32
    return _dtype(p["save_dtype"])
