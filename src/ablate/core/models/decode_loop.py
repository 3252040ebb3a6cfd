"""The engine's own greedy loop over a static KV cache: transformers' ``generate`` without its
host work per step (:func:`ablate.core.models.generation.generate` runs it for embedding prompts
with the static cache).

At batch 1 transformers' loop is bound by the host (bench/results/bridge_speed_h100.md): here
every step stays on the device with the same shapes, and the host checks for the rows' stop once
per :data:`CHECK_EVERY` steps.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

#: Steps between two host checks of "every row has stopped": up to this many steps decoded past
#: the last EOS, in exchange for one synchronisation per this many steps instead of each.
CHECK_EVERY = 16

_COMPILED: dict[int, Any] = {}
#: each model's static KV cache for the last shape it decoded: model -> (shape, cache)
_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _step_fn(model):
    """``model.forward``, compiled with CUDA graphs on CUDA (one per model)."""
    if model.device.type != "cuda":
        return model.forward
    key = id(model)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    return _COMPILED[key]


def cache(model, rows: int, cache_len: int):
    """``model``'s static KV cache of ``rows`` x ``cache_len`` slots, zeroed, kept for the last
    shape: the compiled step's CUDA graphs read it where it was when they were recorded
    (bench/results/bridge_speed_h100.md, section 9)."""
    from transformers import StaticCache

    shape = (rows, cache_len, model.dtype, model.device)
    held = _CACHES.get(model)
    if held is not None and held[0] == shape:
        held[1].reset()
        return held[1]
    release(model)  # the old cache's memory back before the new one is allocated
    made = StaticCache(config=model.config, max_cache_len=cache_len)
    _CACHES[model] = (shape, made)
    return made


def release(model) -> None:
    """Free ``model``'s kept KV cache (:func:`cache`)."""
    _CACHES.pop(model, None)


def _repetition(scores: torch.Tensor, tokens: torch.Tensor, t: int, penalty: float) -> torch.Tensor:
    """transformers' RepetitionPenaltyLogitsProcessor, in place, over the ``t`` tokens generated so
    far: a gather and scatter of those columns, not a dense pass over [B, V]."""
    if t == 0:
        return scores
    seen = tokens[:, :t]
    picked = scores.gather(1, seen)
    picked = torch.where(picked < 0, picked * penalty, picked / penalty)
    return scores.scatter_(1, seen, picked)


def ngram_followers(tokens: torch.Tensor, t: int, n: int):
    """(the token after each n-1 of the ``t`` generated so far, whether those are the last n-1:
    it would repeat an n-gram); None before the first whole n-gram."""
    if t + 1 < n:
        return None
    seq = tokens[:, :t]
    last = seq[:, t - (n - 1) :]  # the n-1 tokens the next one would extend
    starts = t - n + 1  # n-grams seq[i : i + n], i < starts
    match = torch.ones(seq.shape[0], starts, dtype=torch.bool, device=seq.device)
    for j in range(n - 1):
        match &= seq[:, j : j + starts] == last[:, j : j + 1]
    return seq[:, n - 1 : n - 1 + starts], match


def _ngram_ban(scores, tokens: torch.Tensor, t: int, n: int) -> torch.Tensor:
    """transformers' NoRepeatNGramLogitsProcessor, in place, over the ``t`` tokens generated so
    far. A scatter of min(score, -inf) at banned tokens and min(score, +inf) elsewhere, so a token
    banned by one n-gram and not another is banned whatever order the scatter takes."""
    followers = ngram_followers(tokens, t, n)
    if followers is None:
        return scores
    nxt, match = followers
    bound = torch.where(match, float("-inf"), float("inf")).to(scores.dtype)
    return scores.scatter_reduce_(1, nxt, bound, "amin")


@torch.no_grad()
def prefill(model, embeds, mask, steps: int, cache_len: int):
    """The prompts' forward before ``steps`` decode steps: (the KV cache, the [B, cache length]
    mask, the prompts' position ids, the last position's logits as an fp32 copy)."""
    b, width = mask.shape
    dev = embeds.device
    cache_len = max(cache_len, width + steps)
    kv = cache(model, b, cache_len)
    full = torch.zeros(b, cache_len, dtype=mask.dtype, device=dev)
    full[:, :width] = mask
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
    out = model(
        inputs_embeds=embeds,
        attention_mask=full[:, :width],
        position_ids=positions,
        past_key_values=kv,
        cache_position=torch.arange(width, device=dev),
        logits_to_keep=1,
        use_cache=True,
    )
    return kv, full, positions, out.logits[:, -1].to(torch.float32, copy=True)


@torch.no_grad()
def greedy(model, embeds, mask, dec, cache_len: int, hygiene: dict | None) -> torch.Tensor:
    """New tokens [B, N] (N <= ``dec.max_new_tokens``) of the left-padded prompt embeddings: the
    tokens of transformers' greedy ``generate`` with ``hygiene`` (or None), pad after EOS."""
    b, width = mask.shape
    dev, steps = embeds.device, dec.max_new_tokens
    # the logits are a copy: the hygiene writes in place
    kv, full, positions, logits = prefill(model, embeds, mask, steps, cache_len)
    tokens = torch.full((b, steps), dec.pad_token_id, dtype=torch.long, device=dev)
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    step = _step_fn(model)
    pos = positions[:, -1:] + 1
    at = torch.tensor([width], device=dev)
    for t in range(steps):
        if hygiene:
            logits = _repetition(logits, tokens, t, hygiene["repetition_penalty"])
            logits = _ngram_ban(logits, tokens, t, hygiene["no_repeat_ngram_size"])
        nxt = logits.argmax(-1).masked_fill(done, dec.pad_token_id)
        tokens[:, t] = nxt
        if dec.eos_token_id is not None:
            done |= nxt == dec.eos_token_id
            if (t + 1) % CHECK_EVERY == 0 and bool(done.all()):
                return tokens[:, : t + 1]
        if t + 1 == steps:
            break
        full.index_fill_(1, at, 1)
        logits = (
            step(
                input_ids=nxt[:, None],
                attention_mask=full,
                position_ids=pos,
                past_key_values=kv,
                cache_position=at,
                logits_to_keep=1,
                use_cache=True,
            )
            .logits[:, -1]
            .to(torch.float32, copy=True)
        )
        pos, at = pos + 1, at + 1
    return tokens
