"""Attention-mask policies for causal LMs, built through transformers' own masking functions.

Every stage turns a batch into forward kwargs here, so the three policies have one definition.
No hand-made masks: eager adds a boolean 4D mask to the scores (silently ignored), and the seed's
``module.is_causal = False`` patch is a no-op once a padded batch materialises a mask
(tests/mask/test_mask_traps.py). How each policy is built, sliding windows and the split backend
:data:`PREFIX_SDPA`: docs/masks.md. Backend-specific kwargs carry the implementation they were
built for; a forward pre-hook refuses them under another, so a ``set_attn_implementation`` in
between cannot silently drop the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import masking_utils

from ablate.mask import PREFIX_SDPA
from ablate.mask.policies import POLICIES  # one list, importable without torch
from ablate.mask.split_sdpa import (  # importing it registers PREFIX_SDPA with transformers
    BUILT_FOR_KWARG,
    PROMPT_LENGTHS_KWARG,
    BackendMismatchError,
)
from ablate.upstream import hf


class UnknownPolicyError(ValueError):
    pass


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise UnknownPolicyError(
            f"unknown mask policy {policy!r}; choose one of {', '.join(POLICIES)}"
        )
    return policy


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """RoPE positions that ignore (left) padding: each row's first real token is position 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def prompt_token_mask(
    attention_mask: torch.Tensor, prompt_lengths: torch.Tensor | Sequence[int]
) -> torch.Tensor:
    """True on the first ``prompt_lengths[b]`` non-pad tokens of each row."""
    pos = position_ids_from_mask(attention_mask)
    lengths = torch.as_tensor(prompt_lengths, device=attention_mask.device).view(-1, 1)
    return attention_mask.bool() & (pos < lengths)


def text_config(model_or_config: Any):
    """The text model's config of ``model_or_config`` (a model or a config; a VLM's text part)."""
    config = getattr(model_or_config, "config", model_or_config)
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _is_sliding(config, layer_type: str | None) -> bool:
    """Whether layers of ``layer_type`` (None: the config's one kind) attend in a sliding window."""
    if layer_type is not None:
        return layer_type in ("sliding_attention", "sliding_window")
    return bool(getattr(config, "sliding_window", None))


def by_layer_type(config, build):
    """``build(sliding)`` per layer type: one mask, or a dict by type for configs that alternate
    full and sliding-window layers (``config.layer_types``), which is what their forwards accept."""
    layer_types = sorted(set(getattr(config, "layer_types", None) or []))
    if len(layer_types) > 1:
        return {lt: build(_is_sliding(config, lt)) for lt in layer_types}
    return build(_is_sliding(config, layer_types[0] if layer_types else None))


def windowed_prompt_block(block_ids: torch.Tensor, window: int):
    """Prompt-block overlay limited to the layer's window: the bidirectional twin of the causal
    sliding window (HF's causal window is ``q - kv < window``; in the prompt ``|q - kv| < window``).
    """
    block = masking_utils.blockwise_overlay(block_ids)

    def inner(batch_idx, head_idx, q_idx, kv_idx):
        near = (kv_idx - q_idx < window) & (q_idx - kv_idx < window)
        return block(batch_idx, head_idx, q_idx, kv_idx) & near

    return inner


def prefix_lm_mask(
    model_or_config: Any,
    attention_mask: torch.Tensor,
    prompt_lengths: torch.Tensor | Sequence[int],
    *,
    dtype: torch.dtype,
    query_length: int | None = None,
    position_ids: torch.Tensor | None = None,
    past_key_values=None,
):
    """The prefix-LM mask in the configured backend's format (per layer type:
    :func:`by_layer_type`). ``attention_mask``: the 2D padding mask over all keys, cached ones
    included; ``query_length``: the new tokens (default: all). Sliding-window layers keep their
    window (:func:`windowed_prompt_block`): HF's ``block_sequence_ids`` overlay would let a prompt
    token see the whole prompt through them."""
    config = text_config(model_or_config)
    if position_ids is None:
        position_ids = position_ids_from_mask(attention_mask)
    if query_length is None:
        query_length = attention_mask.shape[1]
    position_ids = position_ids[:, -query_length:]
    block_ids = torch.where(prompt_token_mask(attention_mask, prompt_lengths), 0, -1)
    # Only shape, dtype and device of inputs_embeds are read by the mask builders.
    dummy = torch.empty(
        attention_mask.shape[0], query_length, 0, dtype=dtype, device=attention_mask.device
    )
    common = dict(
        config=config,
        inputs_embeds=dummy,
        attention_mask=attention_mask,
        past_key_values=past_key_values,
        position_ids=position_ids,
    )

    def build(sliding: bool):
        if sliding:
            window = config.sliding_window
            return masking_utils.create_sliding_window_causal_mask(
                **common, or_mask_function=windowed_prompt_block(block_ids, window)
            )
        return masking_utils.create_causal_mask(**common, block_sequence_ids=block_ids)

    return by_layer_type(config, build)


def _right_padded(attention_mask: torch.Tensor) -> bool:
    """Every row is its real tokens, then pads; read off the mask (one host sync)."""
    am = attention_mask.bool()
    return bool(am[:, 0].all() & (am[:, 1:] <= am[:, :-1]).all())


def _check_prompt_lengths(
    attention_mask: torch.Tensor, prompt_lengths: torch.Tensor | Sequence[int]
) -> None:
    """Each row's prompt fits in its real tokens: else the split backend's prompt block (which
    trusts it) would cover pads, and real tokens attend to them."""
    real = attention_mask.sum(-1)
    lengths = torch.as_tensor(prompt_lengths, device=attention_mask.device).view(-1)
    bad = (lengths > real) | (lengths < 0)
    rows = torch.nonzero(bad).flatten().tolist()
    if rows:
        b = rows[0]
        raise ValueError(
            f"prompt_lengths[{b}] = {int(lengths[b])} but row {b} has {int(real[b])} real "
            f"(non-pad) tokens; a prompt length counts real tokens of its row "
            f"({len(rows)} row(s) wrong: {rows[:8]})"
        )


def _check_built_for(module: torch.nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook: refuse kwargs built for another attention implementation."""
    built_for = kwargs.pop(BUILT_FOR_KWARG, None)
    if built_for is None:
        return None
    now = hf.attn_implementation(text_config(module))
    if now != built_for:
        raise BackendMismatchError(
            f"these forward kwargs were built by masks.policy_forward_kwargs for attention "
            f"implementation {built_for!r}, but the model now runs {now!r} (changed by "
            f"set_attn_implementation?); under {now!r} the policy's mask would be ignored or "
            f"misread. Build the kwargs again after switching."
        )
    return args, kwargs


def install_backend_check(model: Any) -> None:
    """Hook :func:`_check_built_for` once onto ``model`` and its decoder."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    for m in (model, decoder):  # a decoder that is the model itself: hooked once
        if isinstance(m, torch.nn.Module) and not getattr(m, "_ablate_backend_check", False):
            m.register_forward_pre_hook(_check_built_for, with_kwargs=True)
            m._ablate_backend_check = True


def policy_forward_kwargs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_lengths: torch.Tensor | Sequence[int] | None,
    policy: str,
    *,
    past_key_values=None,
) -> dict[str, Any]:
    """kwargs for ``model(**kw)`` that run one forward under ``policy``.

    ``attention_mask``: the 2D padding mask (left or right padded; with ``past_key_values``, over
    all keys). ``prompt_lengths[b]``: the non-pad prompt tokens of row ``b``, read by
    ``prefix_bidir`` only. A single-token step stays causal ("decode unchanged"). Under
    ``prefix_bidir`` the kwargs hold only for the model's current attention implementation
    (:class:`BackendMismatchError` after a ``set_attn_implementation``)."""
    check_policy(policy)
    if (
        attention_mask.shape[0] != input_ids.shape[0]
        or attention_mask.shape[1] < input_ids.shape[1]
    ):
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} does not cover input_ids "
            f"shape {tuple(input_ids.shape)}"
        )
    position_ids = position_ids_from_mask(attention_mask)[:, -input_ids.shape[1] :]
    kw: dict[str, Any] = dict(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
    )
    if past_key_values is not None:
        kw["past_key_values"] = past_key_values
    if policy == "causal" or input_ids.shape[1] == 1:
        return kw
    if policy == "prefill_bidir":
        kw["is_causal"] = False
        return kw
    if prompt_lengths is None:
        raise ValueError("prefix_bidir needs prompt_lengths (prompt tokens per row)")
    if len(prompt_lengths) != input_ids.shape[0]:
        raise ValueError(
            f"prompt_lengths has {len(prompt_lengths)} entries for a batch of "
            f"{input_ids.shape[0]} rows"
        )
    _check_prompt_lengths(attention_mask, prompt_lengths)
    config = text_config(model)
    impl = hf.attn_implementation(config)
    if impl is not None:
        install_backend_check(model)
        kw[BUILT_FOR_KWARG] = impl
    if (
        impl == PREFIX_SDPA
        and past_key_values is None
        and not any(
            _is_sliding(config, lt) for lt in getattr(config, "layer_types", None) or [None]
        )
        and _right_padded(attention_mask)
    ):
        # Right padding: real tokens never attend to the trailing pads under causal attention, so
        # the flash path needs no mask at all (pad positions get finite, unused outputs). arange
        # positions equal the mask's for real tokens and keep HF's packed-sequence detection off.
        kw["attention_mask"] = None
        kw["position_ids"] = None
        if isinstance(prompt_lengths, torch.Tensor):
            prompt_lengths = prompt_lengths.tolist()  # one transfer, not one per row
        kw[PROMPT_LENGTHS_KWARG] = tuple(int(p) for p in prompt_lengths)
        return kw
    kw["attention_mask"] = prefix_lm_mask(
        model,
        attention_mask,
        prompt_lengths,
        dtype=getattr(model, "dtype", torch.float32),
        query_length=input_ids.shape[1],
        position_ids=position_ids,
        past_key_values=past_key_values,
    )
    return kw
