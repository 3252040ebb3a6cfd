"""The split-sdpa attention implementation :data:`PREFIX_SDPA` (``"sdpa_prefix_split"``).

``sdpa``, except where ``masks.policy_forward_kwargs`` hands over per-row prompt lengths
(:data:`PROMPT_LENGTHS_KWARG`) and no mask (docs/masks.md). Importing this module registers it
with transformers.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AttentionInterface, masking_utils
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from ablate.mask import PREFIX_SDPA

# Forward kwarg that carries per-row prompt lengths (python ints) to the PREFIX_SDPA attention.
PROMPT_LENGTHS_KWARG = "ablate_prompt_lengths"
# Forward kwarg naming the attention implementation backend-specific kwargs were built for.
BUILT_FOR_KWARG = "ablate_built_for_attn"


class BackendMismatchError(RuntimeError):
    """Policy kwargs built for one attention implementation reached a model running another."""


@lru_cache(maxsize=64)
def prompt_token_index(lengths: tuple[int, ...], width: int, device: torch.device) -> torch.Tensor:
    """Flat (row * width + position) index of every prompt token, for all layers."""
    idx = [b * width + t for b, p in enumerate(lengths) for t in range(p)]
    return torch.tensor(idx, dtype=torch.long, device=device)


_BLOCK_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def _prompt_blocks(query, key, value, lengths, scaling, enable_gqa, track: bool):
    """Per row b, non-causal attention of queries [0, p_b) over keys [0, p_b).

    Returns the per-row (1, H, p, D) outputs and, with ``track``, their detached leaf inputs."""
    leaves, outs = [], []
    # Not cuDNN: it builds an execution plan per new shape (~65 ms each on an H200, and every
    # prompt length is a new shape); flash needs none. The full causal call keeps cuDNN.
    with torch.set_grad_enabled(track), sdpa_kernel(_BLOCK_BACKENDS):
        for b, p in enumerate(lengths):
            qkv = [x[b : b + 1, :, :p] for x in (query, key, value)]
            if track:
                qkv = [x.detach().requires_grad_() for x in qkv]
            outs.append(F.scaled_dot_product_attention(*qkv, scale=scaling, enable_gqa=enable_gqa))
            leaves.append(qkv)
    return outs, leaves


def _pack(outs) -> torch.Tensor:
    """(1, H, p, D) per row -> (sum p, H, D) in row order."""
    return torch.cat([o[0].transpose(0, 1) for o in outs])


class _PromptBlockAttention(torch.autograd.Function):
    """:func:`_prompt_blocks` packed as (sum p, H, D), with a lean backward: plain autograd over
    per-row slices allocates a full-size zero gradient per row; here each input gets one, which
    the rows' gradients (of the graphs built in forward) are written into."""

    @staticmethod
    def forward(ctx, query, key, value, lengths, scaling, enable_gqa):
        outs, leaves = _prompt_blocks(query, key, value, lengths, scaling, enable_gqa, True)
        ctx.leaves, ctx.outs, ctx.lengths = leaves, outs, lengths
        ctx.inputs = (query, key, value)
        return _pack(outs).detach()

    @staticmethod
    def backward(ctx, grad):
        grads = [torch.zeros_like(x) for x in ctx.inputs]
        for b, (p, g) in enumerate(zip(ctx.lengths, grad.split(list(ctx.lengths)))):
            parts = torch.autograd.grad(ctx.outs[b], ctx.leaves[b], g.transpose(0, 1)[None])
            for full, part in zip(grads, parts):
                full[b : b + 1, :, :p] = part
        ctx.leaves = ctx.outs = ctx.inputs = None
        return (*grads, None, None, None)


def prefix_split_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention function of :data:`PREFIX_SDPA`: plain ``sdpa`` unless prompt lengths are given
    (rows starting at column 0). Then one causal flash call over the batch, whose prompt rows
    are overwritten by one non-causal call per row over its prompt block: the prompt queries'
    causal work is wasted, far cheaper than a dense mask that rules out flash. No dropout."""
    lengths = kwargs.pop(PROMPT_LENGTHS_KWARG, None)
    built_for = kwargs.pop(BUILT_FOR_KWARG, PREFIX_SDPA)  # set when no module hook consumed it
    if built_for != PREFIX_SDPA:
        raise BackendMismatchError(
            f"kwargs built for attention implementation {built_for!r} reached {PREFIX_SDPA}"
        )
    if lengths is None or query.shape[2] == 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    kwargs.pop("is_causal", None)
    batch, heads, width, dim = query.shape
    if len(lengths) != batch:
        raise ValueError(f"{len(lengths)} prompt lengths for a batch of {batch} rows")
    if dropout:
        raise ValueError(f"{PREFIX_SDPA} does not support attention dropout ({dropout})")
    # (B, T, H, D); a mask here (if a builder materialised one) is causal + padding, still exact
    # for response queries.
    out, _ = sdpa_attention_forward(
        module, query, key, value, attention_mask, scaling=scaling, is_causal=True, **kwargs
    )
    gqa = key.shape[1] != heads
    if torch.is_grad_enabled() and any(x.requires_grad for x in (query, key, value)):
        blocks = _PromptBlockAttention.apply(query, key, value, tuple(lengths), scaling, gqa)
    else:
        blocks = _pack(_prompt_blocks(query, key, value, lengths, scaling, gqa, False)[0])
    idx = prompt_token_index(tuple(lengths), width, query.device)
    flat = out.reshape(batch * width, heads, out.shape[-1])
    return flat.index_copy(0, idx, blocks.to(flat.dtype)).view(out.shape), None


AttentionInterface.register(PREFIX_SDPA, prefix_split_sdpa_attention)
# Mask builders key on the implementation name: PREFIX_SDPA takes sdpa's mask format.
masking_utils.AttentionMaskInterface.register(PREFIX_SDPA, masking_utils.sdpa_mask)
