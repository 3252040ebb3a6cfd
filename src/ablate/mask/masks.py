"""Attention-mask policies for causal LMs, built through transformers' own masking functions.

Every stage (evaluation, finetuning, the leakage probe) turns a batch into forward kwargs here, so
the three policies (``causal``, ``prefill_bidir``, ``prefix_bidir``: what each lets a token see is
:data:`ablate.mask.policies.POLICY_DESCRIPTIONS`) have exactly one definition.

Why not hand-made masks: a boolean 4D mask is *added* to the scores under ``eager`` (True/False
become +1/0), so it is silently ignored; and the seed's ``module.is_causal = False`` patch is a
no-op as soon as a padded batch materialises a mask. Both traps are pinned by tests
(tests/mask/test_mask_traps.py). Instead:

- ``prefill_bidir`` uses the forward's own ``is_causal=False`` switch, which routes mask creation
  to ``create_bidirectional_mask`` (or its sliding-window twin) for every backend.
- ``prefix_bidir`` uses ``block_sequence_ids`` (0 on prompt tokens, -1 elsewhere: the
  PaliGemma/Gemma3 prefix mechanism) in the matching ``create_*_mask`` function, which returns
  the backend's own format (additive float for eager, bool/None for sdpa, BlockMask for flex).
  Sliding-window layers keep their window: see :func:`prefix_lm_mask`.
- :data:`PREFIX_SDPA` is an extra attention implementation (:mod:`ablate.mask.split_sdpa`,
  registered with transformers' ``AttentionInterface`` on import) that equals ``sdpa`` except
  for ``prefix_bidir`` on right-padded batches without a cache: there it runs one mask-free
  (flash-eligible) causal call over the batch plus one non-causal call per row over its prompt
  block, instead of a dense mask that rules out the flash kernels. Same audit, same numbers; see
  docs/masks.md for when it pays.

kwargs whose content depends on the backend (every multi-token ``prefix_bidir`` forward: a mask
in the backend's format, or the split path's prompt lengths) carry the implementation they were
built for; a forward pre-hook on the model refuses them under another one, so a
``set_attn_implementation`` between building and running cannot silently drop the policy.
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
    """RoPE positions that ignore padding: the first real token of every row is position 0.

    Needed for left padding (the models default to ``arange``); pads get 0 and are masked anyway.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def prompt_token_mask(
    attention_mask: torch.Tensor, prompt_lengths: torch.Tensor | Sequence[int]
) -> torch.Tensor:
    """True on the first ``prompt_lengths[b]`` non-pad tokens of each row (left or right
    padding)."""
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


def _has_sliding_layers(config) -> bool:
    layer_types = getattr(config, "layer_types", None) or [None]
    return any(_is_sliding(config, lt) for lt in layer_types)


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
    """The prefix-LM mask in the format the configured backend expects.

    ``attention_mask`` is the 2D padding mask over all keys (cached ones included);
    ``query_length`` is the number of new tokens (default: all of them, i.e. no cache).
    Returns a single mask, or a dict keyed by layer type (:func:`by_layer_type`).

    Sliding-window layers keep their window: HF's own ``block_sequence_ids`` overlay would let a
    prompt token see the whole prompt through a windowed layer, so there the prompt block is
    intersected with the window (``|q - kv| < window``), built as an ``or_mask_function`` of the
    same ``create_sliding_window_causal_mask``.
    """
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
    """Every row is its real tokens followed by pads (or no pads at all); read off the mask (on
    a GPU, one host-device sync)."""
    am = attention_mask.bool()
    return bool(am[:, 0].all() & (am[:, 1:] <= am[:, :-1]).all())


def _uses_prefix_split(model, past_key_values, attention_mask) -> bool:
    config = text_config(model)
    return (
        hf.attn_implementation(config) == PREFIX_SDPA
        and past_key_values is None
        and not _has_sliding_layers(config)
        and _right_padded(attention_mask)
    )


def _check_prompt_lengths(
    attention_mask: torch.Tensor, prompt_lengths: torch.Tensor | Sequence[int]
) -> None:
    """Each row's prompt fits in its real tokens: a longer one would make the prompt block of
    the split backend (which trusts it) cover pad positions, so real tokens attend to pads (the
    error names the row)."""
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
    """Hook :func:`_check_built_for` once onto ``model`` and its decoder (the fast paths call the
    decoder with the same kwargs)."""
    targets = [model]
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if isinstance(decoder, torch.nn.Module) and decoder is not model:
        targets.append(decoder)
    for m in targets:
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

    ``attention_mask`` is the 2D padding mask (1 = real token), left or right padded.
    ``prompt_lengths[b]`` is the number of non-pad prompt (context) tokens of row ``b``; it is
    only read by ``prefix_bidir``. With a cache, pass ``past_key_values`` and the full-length 2D
    mask; a single-token step is always left causal ("decode unchanged"). Under ``prefix_bidir``
    right-padded rows take the split backend's mask-free path (read off the mask: one
    host-device sync).
    A prompt length above its row's real tokens is refused (the error names the row). Under
    ``prefix_bidir`` the kwargs are only valid for the model's current attention implementation:
    running them after ``set_attn_implementation`` to another raises
    :class:`BackendMismatchError`.
    """
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
    impl = hf.attn_implementation(text_config(model))
    if impl is not None:
        install_backend_check(model)
        kw[BUILT_FOR_KWARG] = impl
    if _uses_prefix_split(model, past_key_values, attention_mask):
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
