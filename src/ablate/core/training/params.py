"""Training parameters (keys, bounds and defaults: the config schema), their resolution, dtype rules,
errors."""

from __future__ import annotations

from typing import Any

import torch

from ablate.core import config

IGNORE_INDEX = -100

KINDS = ("finetune", "pretrain")


def params_schema(kind: str, prefix: str = "") -> dict[str, Any]:
    """The schema of a run's parameters, from the pipeline's config schema (its one statement of
    keys, bounds and defaults): ``finetune_params`` or ``pretrain_params``, or a study's extension
    of them (``prefix``: ``mask_`` reads ``mask_finetune_params``), closed: an unknown key is an
    error."""
    if kind not in KINDS:
        raise TrainingConfigError(f"unknown kind of run {kind!r}; choose one of {', '.join(KINDS)}")
    return {**config.subschema(f"$defs/{prefix}{kind}_params"), "unevaluatedProperties": False}


def defaults(kind: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter's default for a ``finetune`` or ``pretrain`` run (docs/training.md), or of
    ``schema`` (a study's extension of the kind's schema)."""
    return config.defaults_of(schema or params_schema(kind))


class TrainingError(RuntimeError):
    pass


class TrainingConfigError(TrainingError, ValueError):
    pass


def resolve_params(
    params: dict | None, kind: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The defaults of ``kind`` (or of ``schema``) overlaid with ``params``, checked: the one
    merge with the defaults, where a config is parsed (the pipeline's config gets them from its
    validation; a library command line or a benchmark calls this). An unknown key (a typo must
    not be ignored) or a bad value is an error naming the key."""
    schema = schema or params_schema(kind)
    return check_params({**config.defaults_of(schema), **(params or {})}, kind, schema)


def check_params(
    params: dict[str, Any],
    kind: str,
    schema: dict[str, Any] | None = None,
    optional: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``params`` as a job takes them (resolved where the config was parsed), checked only:
    against the schema of ``kind`` (or ``schema``), and with every key that has a default but
    those ``optional``."""
    schema = schema or params_schema(kind)
    try:
        config.check(params, schema, f"{kind} parameter")
    except config.ConfigError as exc:
        raise TrainingConfigError(str(exc)) from None
    missing = sorted(set(config.defaults_of(schema)) - set(params) - set(optional))
    if missing:
        raise TrainingConfigError(
            f"{kind} parameters without {', '.join(missing)}: a job takes them resolved "
            f"(the config's defaults filled in when it is parsed; a library caller: resolve_params)"
        )
    return params


def bf16_enabled(setting: Any) -> bool:
    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(setting)


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise TrainingConfigError(f"{name!r} is not a torch dtype (e.g. float32, bfloat16)")
    return dtype


def model_dtype(p: dict[str, Any]) -> torch.dtype:
    """The weights' dtype of params ``p``: ``p["model_dtype"]``, where ``auto`` is bfloat16 when
    bf16 is on (``p["bf16"]``; unset: ``auto``, a GPU with bf16) and float32 otherwise (any
    process count: a run whose weights are sharded upcasts its shards, which are its masters)."""
    if p["model_dtype"] == "auto":
        return torch.bfloat16 if bf16_enabled(p.get("bf16", "auto")) else torch.float32
    return _dtype(p["model_dtype"])


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (as records and the config write it)."""
    return str(dtype).removeprefix("torch.")


def master_weights_enabled(p: dict[str, Any]) -> bool:
    if p["master_weights"] == "auto":
        return model_dtype(p).itemsize < 4
    return bool(p["master_weights"])


def save_dtype(p: dict[str, Any]) -> torch.dtype:
    if p["save_dtype"] == "auto":
        return torch.bfloat16 if bf16_enabled(p["bf16"]) else torch.float32
    return _dtype(p["save_dtype"])
