"""Attention-mask policies for causal LMs, built through transformers' own masking functions.

Every stage (evaluation, finetuning, the leakage probe) turns a batch into forward kwargs here, so
the three policies have exactly one definition:

- ``causal``: the standard mask.
- ``prefill_bidir``: any forward with more than one query token attends to every non-pad token;
  single-token decode steps are unchanged (the seed study's ablation).
- ``prefix_bidir``: prompt tokens attend to each other in both directions; later tokens attend
  causally (all prompt tokens plus earlier response tokens). Leakage-safe prefix-LM.

Why not hand-made masks: a boolean 4D mask is *added* to the scores under ``eager`` (True/False
become +1/0), so it is silently ignored; and the seed's ``module.is_causal = False`` patch is a
no-op as soon as a padded batch materialises a mask. Both traps are pinned by tests
(tests/test_mask_traps.py). Instead:

- ``prefill_bidir`` uses the forward's own ``is_causal=False`` switch, which routes mask creation
  to ``create_bidirectional_mask`` (or its sliding-window twin) for every backend.
- ``prefix_bidir`` uses ``block_sequence_ids`` (0 on prompt tokens, -1 elsewhere: the
  PaliGemma/Gemma3 prefix mechanism) in the matching ``create_*_mask`` function, which returns
  the backend's own format (additive float for eager, bool/None for sdpa, BlockMask for flex).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import masking_utils

POLICIES: tuple[str, ...] = ("causal", "prefill_bidir", "prefix_bidir")

#: Policies under which a token's representation may depend on later response tokens.
LEAKING_POLICIES: frozenset[str] = frozenset({"prefill_bidir"})


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
    attention_mask: torch.Tensor, prompt_lengths: torch.Tensor
) -> torch.Tensor:
    """True on the first ``prompt_lengths[b]`` non-pad tokens of each row (left or right padding)."""
    pos = position_ids_from_mask(attention_mask)
    lengths = torch.as_tensor(prompt_lengths, device=attention_mask.device).view(-1, 1)
    return attention_mask.bool() & (pos < lengths)


def _text_config(model_or_config: Any):
    config = getattr(model_or_config, "config", model_or_config)
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _mask_fn_for(config, layer_type: str | None):
    sliding = layer_type in ("sliding_attention", "sliding_window") or (
        layer_type is None and getattr(config, "sliding_window", None)
    )
    if sliding:
        return masking_utils.create_sliding_window_causal_mask
    return masking_utils.create_causal_mask


def prefix_lm_mask(
    model_or_config: Any,
    attention_mask: torch.Tensor,
    prompt_lengths: torch.Tensor,
    *,
    dtype: torch.dtype,
    position_ids: torch.Tensor | None = None,
    past_key_values=None,
):
    """The prefix-LM mask in the format the configured backend expects.

    Returns a single mask, or a dict keyed by layer type for configs that alternate full and
    sliding-window layers (``config.layer_types``), which is what those models' forwards accept.
    """
    config = _text_config(model_or_config)
    if position_ids is None:
        position_ids = position_ids_from_mask(attention_mask)
    block_ids = torch.where(prompt_token_mask(attention_mask, prompt_lengths), 0, -1)
    # Only shape, dtype and device of inputs_embeds are read by the mask builders.
    dummy = torch.empty(
        *attention_mask.shape, 0, dtype=dtype, device=attention_mask.device
    )
    kwargs = dict(
        config=config,
        inputs_embeds=dummy,
        attention_mask=attention_mask,
        past_key_values=past_key_values,
        position_ids=position_ids,
        block_sequence_ids=block_ids,
    )
    layer_types = set(getattr(config, "layer_types", None) or [])
    if len(layer_types) > 1:
        return {lt: _mask_fn_for(config, lt)(**kwargs) for lt in sorted(layer_types)}
    return _mask_fn_for(config, next(iter(layer_types), None))(**kwargs)


def policy_forward_kwargs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_lengths: torch.Tensor | None,
    policy: str,
    *,
    past_key_values=None,
    position_ids: torch.Tensor | None = None,
) -> dict[str, Any]:
    """kwargs for ``model(**kw)`` that run one forward under ``policy``.

    ``attention_mask`` is the 2D padding mask (1 = real token), left or right padded.
    ``prompt_lengths[b]`` is the number of non-pad prompt (context) tokens of row ``b``; it is
    only read by ``prefix_bidir``. With a cache, pass ``past_key_values`` and the full-length 2D
    mask; a single-token step is always left causal ("decode unchanged").
    """
    check_policy(policy)
    if position_ids is None:
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
    dtype = getattr(model, "dtype", torch.float32)
    kw["attention_mask"] = prefix_lm_mask(
        model,
        attention_mask,
        prompt_lengths,
        dtype=dtype,
        position_ids=position_ids,
        past_key_values=past_key_values,
    )
    return kw
