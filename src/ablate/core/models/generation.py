"""The one generation engine: batched greedy decoding of many prompts through transformers' generate.

Knows no study. A prompt is a 1-D tensor of token ids or a 2-D tensor of input embeddings; each
prompt's new tokens come back up to its first EOS, in the callers' order. Prompts are batched by
length and left-padded; on the CPU a batch holds one length only: left padding moves attention's
rounding by an ulp, which flips near-ties of greedy decoding. On CUDA, up to
:data:`STATIC_MAX_BATCH` rows, a static KV cache and batches of one row count, so the decode step
compiles once per shape. transformers' ``generate`` is what the study ran before, token for token.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import Any

import torch

from ablate.core.models import decode_loop
from ablate.upstream import hf, pytorch

#: The seed's generation hygiene: repetition penalty and an n-gram ban over the generated tokens.
_HYGIENE = {"repetition_penalty": 1.1, "no_repeat_ngram_size": 3}
#: Compiled decode steps torch keeps per function, one per (batch, cache length): past its
#: default (8) torch runs the step uncompiled, silently (bench/results/generate_h100.md)
RECOMPILE_LIMIT = 64


@dataclass(frozen=True)
class Decoding:
    """How to decode: greedy, ``max_new_tokens`` at most, optional hygiene."""

    max_new_tokens: int
    pad_token_id: int
    eos_token_id: int | None
    hygiene: bool = False
    batch_size: int = 64
    #: static-cache length; None: the call's longest prompt + max_new_tokens. A floor, not a cap:
    #: transformers sizes the cache max(this, prompt + max_new_tokens). Calls that share one
    #: length (and one batch size) share one compiled decode step
    cache_len: int | None = None

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = dict(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_id,
        )
        if self.hygiene:
            kw.update(_HYGIENE)
        return kw


#: The largest batch decoded with the static cache: the largest measured, faster than the
#: dynamic cache at every batch up to it (bench/results/bridge_speed_h100.md)
STATIC_MAX_BATCH = 512


#: The attention the compiled decode step runs: transformers' SDPA, except that one query token
#: attends with the query heads packed onto the grouped KV heads instead of ``repeat_kv`` copies
#: of the cache, which transformers makes when compiled (bench/results/bridge_speed_h100.md)
DECODE_ATTENTION = "sdpa_packed_gqa"


def packed_gqa_attention(module, query, key, value, attention_mask, **kwargs):
    """transformers' ``sdpa_attention_forward``, with one query token always packed (see
    ``DECODE_ATTENTION``); prefill and training (several query tokens) go to it unchanged."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    mask = attention_mask
    plain = query.shape[2] != 1 or groups == 1 or kwargs.get("position_bias") is not None
    if plain or (mask is not None and mask.shape[1] != 1):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    b, h, _, d = query.shape
    out = torch.nn.functional.scaled_dot_product_attention(
        query.reshape(b, h // groups, groups, d),
        key,
        value,
        attn_mask=mask,
        dropout_p=kwargs.get("dropout", 0.0),
        scale=kwargs.get("scaling"),
    )
    return out.reshape(b, h, 1, d).transpose(1, 2).contiguous(), None


def _use_packed_attention(model) -> None:
    """Make ``model`` (an SDPA model) attend through :func:`packed_gqa_attention`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if hf.attn_implementation(model.config) != "sdpa":
        return
    AttentionInterface.register(DECODE_ATTENTION, packed_gqa_attention)
    AttentionMaskInterface.register(DECODE_ATTENTION, sdpa_mask)
    model.set_attn_implementation(DECODE_ATTENTION)


#: each head given :func:`contiguous_head`'s hook -> the hook's handle
_HEAD_HOOKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _contiguous_input(module, args):
    # eager only: a compiled step lays its tensors out itself, and keeps the graph it had
    if not torch.compiler.is_compiling():
        return (args[0].contiguous(), *args[1:])


def contiguous_head(model) -> None:
    """Work around a transformers/torch slowdown (tests/core/test_upstream_transformers.py): a
    frozen head given a non-contiguous view runs as a bmm over B copies of its weight
    (bench/results/bridge_speed_h100.md, section 8). Only on CUDA: the CPU's embedded items keep
    their kernels (and so their tokens)."""
    head = model.get_output_embeddings()
    if head is None or model.device.type != "cuda":
        return
    if head not in _HEAD_HOOKS:
        _HEAD_HOOKS[head] = head.register_forward_pre_hook(_contiguous_input)


def release(model) -> None:
    """Free the KV cache the engine keeps for ``model`` between calls."""
    decode_loop.release(model)


def uses_static(model, dec: Decoding) -> bool:
    """The static cache (and transformers' compiled decode step): on CUDA up to
    STATIC_MAX_BATCH rows, eager otherwise."""
    return model.device.type == "cuda" and dec.batch_size <= STATIC_MAX_BATCH


def exact_lengths(model) -> bool:
    """Batches of one prompt length on CPU (module docstring), padded batches on a GPU."""
    return model.device.type != "cuda"


def buckets(lengths: list[int], batch_size: int, exact: bool = False) -> list[list[int]]:
    """Indices sorted by length (stable), in batches of ``batch_size``; ``exact``: a batch holds
    one length only (no padding)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups = [order]
    if exact:
        groups = [[i for i in order if lengths[i] == n] for n in sorted(set(lengths))]
    return [g[i : i + batch_size] for g in groups for i in range(0, len(g), batch_size)]


def left_pad(prompts: list[torch.Tensor], pad_token_id: int, rows: int | None = None):
    """(batch, mask) of ``prompts`` left-padded to the longest; ``rows`` > len fills with copies
    of the last prompt. Token ids pad with ``pad_token_id``, embeddings with zeros (masked)."""
    prompts = prompts + [prompts[-1]] * ((rows or len(prompts)) - len(prompts))
    width = max(len(p) for p in prompts)
    first = prompts[0]
    shape = (len(prompts), width, *first.shape[1:])
    fill = pad_token_id if first.dim() == 1 else 0
    batch = torch.full(shape, fill, dtype=first.dtype, device=first.device)
    mask = torch.zeros(len(prompts), width, dtype=torch.long, device=first.device)
    for r, p in enumerate(prompts):
        batch[r, width - len(p) :] = p
        mask[r, width - len(p) :] = 1
    return batch, mask


def trim(row: list[int], eos_token_id: int | None) -> list[int]:
    """New tokens up to and including the first EOS (the padding after it dropped)."""
    if eos_token_id is not None and eos_token_id in row:
        return row[: row.index(eos_token_id) + 1]
    return row


@torch.no_grad()
def generate_batch(model, batch: torch.Tensor, mask: torch.Tensor, dec: Decoding, **extra):
    """New tokens [B, N] of a padded batch: embedding prompts with the static cache through
    :mod:`.decode_loop` (token-identical, faster: bench/results/bridge_speed_h100.md, section
    5), the rest through :func:`transformers_batch`."""
    if batch.dim() == 3 and "max_cache_len" in extra:
        contiguous_head(model)
        hygiene = _HYGIENE if dec.hygiene else None
        return decode_loop.greedy(model, batch, mask, dec, extra["max_cache_len"], hygiene)
    return transformers_batch(model, batch, mask, dec, **extra)


@torch.no_grad()
def transformers_batch(model, batch: torch.Tensor, mask: torch.Tensor, dec: Decoding, **extra):
    """One ``model.generate`` call on a padded batch: new tokens [B, N]."""
    contiguous_head(model)
    key = "input_ids" if batch.dim() == 2 else "inputs_embeds"
    kwargs = dec.kwargs()
    if key == "inputs_embeds":
        kwargs = embeds_repetition_penalty(kwargs)
    out = model.generate(**{key: batch}, attention_mask=mask, **kwargs, **extra)
    # given input_ids, generate returns the prompt too; given embeddings, only the new tokens
    return out[:, batch.shape[1] :] if key == "input_ids" else out


def embeds_repetition_penalty(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Work around a transformers bug (tests/core/test_upstream_transformers.py shows it): given
    embeddings, ``generate``'s repetition penalty skips a row's first k generated tokens when the
    batch left-padded it by k. The processor is passed here without that length instead."""
    penalty = kwargs.get("repetition_penalty")
    if penalty is None or penalty == 1.0:
        return kwargs
    from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

    rest = {k: v for k, v in kwargs.items() if k != "repetition_penalty"}
    return {
        **rest,
        "logits_processor": LogitsProcessorList([RepetitionPenaltyLogitsProcessor(penalty)]),
    }


def batches(model, prompts: list[torch.Tensor], dec: Decoding):
    """The engine's batches of ``prompts``: ``(indices, batch, mask, extra)``, ``extra`` the
    static cache's kwargs where :func:`uses_static`."""
    dev = model.device
    prompts = [p.to(dev) for p in prompts]
    extra: dict[str, Any] = {}
    rows = None
    if uses_static(model, dec):
        _use_packed_attention(model)
        rows = min(dec.batch_size, len(prompts))
        longest = max(len(p) for p in prompts) + dec.max_new_tokens
        extra = dict(cache_implementation="static", max_cache_len=dec.cache_len or longest)
    for idx in buckets([len(p) for p in prompts], dec.batch_size, exact_lengths(model)):
        batch, mask = left_pad([prompts[i] for i in idx], dec.pad_token_id, rows)
        yield idx, batch, mask, extra


@torch.no_grad()
def generate(model, prompts: list[torch.Tensor], dec: Decoding) -> list[list[int]]:
    """Each prompt's greedy new tokens (up to its EOS), batched by length, in input order."""
    out: list[list[int] | None] = [None] * len(prompts)
    if not prompts:
        return []
    static = uses_static(model, dec)
    limit = (
        pytorch.recompile_limit_at_least(RECOMPILE_LIMIT) if static else contextlib.nullcontext()
    )
    with limit:
        for idx, batch, mask, extra in batches(model, prompts, dec):
            new = generate_batch(model, batch, mask, dec, **extra).tolist()
            for i, row in zip(idx, new, strict=False):  # copies filling the last batch dropped
                out[i] = trim(row, dec.eos_token_id)
    return out  # type: ignore[return-value]
