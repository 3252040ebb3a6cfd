"""An experiment, not the engine: the engine's own decode loop
(:mod:`ablate.core.models.decode_loop`) with every step's hygiene and greedy pick in fixed shapes
(the n-gram ban over the whole token buffer with a position mask, the step count a tensor), so they
can be compiled. Tried on one H100 and not kept (bench/results/bridge_speed_h100.md, "Decoding: what
was tried and not kept"):

- ``WHOLE`` True: forward + pick + bookkeeping compiled as one function with CUDA graphs
  (``_step_fn``): no faster at batch 64 (11.02 ms a step against the split's 10.97), and its
  tokens left transformers' loop at near-ties (Inductor fused the forward otherwise);
- ``WHOLE`` False: the forward compiled as the engine compiles it and the pick compiled apart
  (``_compiled``): 5,835 new tokens/s at batch 64 in one call, 5,541 in another, and 123 at batch
  1 (the compiled pick's guards on the host each step), against the engine's 5,787-5,798 and
  134-138 on other hosts.

Run through bench/decode_loop_variants.py, which swaps it in for the engine's ``greedy``. The
prefill, the kept KV cache and the stopping check's period are the engine's
(``decode_loop.prefill``, ``decode_loop.CHECK_EVERY``).
"""

from __future__ import annotations

import struct
from typing import Any

import torch

from ablate.core.models import decode_loop

_COMPILED: dict[int, Any] = {}
#: the step compiled whole (``_step_fn``) or the forward and the pick apart (``_compiled``)
WHOLE = False
#: how ``_step_fn`` compiles the whole step: the torch.compile keyword arguments
WHOLE_COMPILE: dict[str, Any] = {"mode": "reduce-overhead", "fullgraph": True}


def _step_fn(model):
    """:func:`_step` compiled whole on CUDA (one per model), eager elsewhere."""
    if model.device.type != "cuda" or WHOLE_COMPILE is None:
        return _step
    key = ("whole", id(model))
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(_step, **WHOLE_COMPILE)
    return _COMPILED[key]


def _compiled(model) -> tuple[Any, Any]:
    """(forward, pick) of ``model``'s steps: on CUDA ``model.forward`` compiled with CUDA graphs
    and :func:`_pick` compiled apart (a few fused kernels instead of a dozen launches a step;
    no graphs: it writes the loop's state). Compiled together with the forward in one graph,
    Inductor fused the forward differently and its tokens left transformers' at near-ties (1 of
    64 rows equal on an H100) without being faster (bench/results/bridge_speed_h100.md)."""
    if model.device.type != "cuda":
        return model.forward, _pick
    key = id(model)
    if key not in _COMPILED:
        _COMPILED[key] = (
            torch.compile(model.forward, mode="reduce-overhead", fullgraph=True),
            torch.compile(_pick, fullgraph=True),
        )
    return _COMPILED[key]


def _f32(x: float) -> float:
    """``x`` rounded to float32 (IEEE round to nearest), as a Python float."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _rules(hygiene: dict | None) -> dict | None:
    """The hygiene with the repetition penalty's factors worked out on the host: what
    :func:`_repetition` multiplies by (see there), so the compiled step only reads constants."""
    if not hygiene:
        return None
    pen = hygiene["repetition_penalty"]
    return {**hygiene, "times": _f32(pen), "over": _f32(1.0 / _f32(pen))}


def _repetition(scores: torch.Tensor, seen: torch.Tensor, rules: dict) -> torch.Tensor:
    """transformers' RepetitionPenaltyLogitsProcessor on the tokens marked in ``seen`` [B, V],
    bit for bit also inside the compiled step: its ``scores * penalty`` multiplies by the
    penalty rounded to float32, and on CUDA its ``scores / penalty`` is aten's division by a
    Python scalar, ``scores * (1 / penalty)`` with that reciprocal rounded to float32 first
    (``div_true_kernel_cuda``). Written so, Inductor computes the same bits (it would divide
    exactly, or fold a reciprocal of its own); on the CPU the division stays the division."""
    if scores.is_cuda:
        divided = scores * rules["over"]
    else:
        divided = scores / rules["repetition_penalty"]
    return torch.where(seen, torch.where(scores < 0, scores * rules["times"], divided), scores)


def _ngram_ban(scores, tokens: torch.Tensor, t: torch.Tensor, n: int) -> torch.Tensor:
    """transformers' NoRepeatNGramLogitsProcessor over the ``t`` tokens generated so far (of the
    [B, max_new] ``tokens``; ``t`` a 0-d tensor, so every step has the same shapes): a token
    that would repeat an n-gram of them is -inf. The n-grams starting at i < t - n + 1 are those
    of the generated tokens; later starts are masked out, so none is banned before t = n - 1."""
    b, width = tokens.shape
    m = width - n + 1  # every n-gram start of the buffer
    if m < 1:
        return scores
    # the n-1 tokens the next one would extend (clamped below t = n - 1, where none matches)
    last = tokens.gather(
        1, (t - (n - 1) + torch.arange(n - 1, device=t.device)).clamp_min(0).expand(b, -1)
    )
    match = (torch.arange(m, device=t.device) < t - n + 1).expand(b, -1)
    for j in range(n - 1):
        match = match & (tokens[:, j : j + m] == last[:, j : j + 1])
    ban = torch.zeros_like(scores).scatter_add_(1, tokens[:, n - 1 :], match.to(scores.dtype)) > 0
    return scores.masked_fill(ban, float("-inf"))


def _pick(logits, state: dict[str, torch.Tensor], hygiene: dict | None, pad: int, eos: int):
    """The greedy token of each row at step ``state["t"]`` (hygiene first), written into the
    state: the row's tokens, its seen-token mask, its done flag (pad after its EOS)."""
    if hygiene:
        logits = _repetition(logits, state["seen"], hygiene)
        logits = _ngram_ban(logits, state["tokens"], state["t"], hygiene["no_repeat_ngram_size"])
    nxt = logits.argmax(-1).masked_fill(state["done"], pad)
    state["tokens"].index_copy_(1, state["t"].view(1), nxt[:, None])
    state["seen"].scatter_(1, nxt[:, None], True)
    state["done"].logical_or_(nxt == eos)
    state["last"].copy_(nxt)


def _step(model, cache, state: dict[str, torch.Tensor], hygiene: dict | None, pad: int, eos: int):
    """One decode step, in place: the last tokens through the model, the next ones picked."""
    forward, pick = (model.forward, _pick) if WHOLE else _compiled(model)
    state["t"].add_(1)
    state["full"].index_fill_(1, state["at"], 1)
    logits = forward(
        input_ids=state["last"][:, None].clone(),
        attention_mask=state["full"],
        position_ids=state["pos"],
        past_key_values=cache,
        cache_position=state["at"],
        logits_to_keep=1,
        use_cache=True,
    ).logits[:, -1]
    pick(logits.float(), state, hygiene, pad, eos)
    state["pos"].add_(1)
    state["at"].add_(1)


@torch.no_grad()
def greedy(model, embeds, mask, dec, cache_len: int, hygiene: dict | None) -> torch.Tensor:
    """:func:`ablate.core.models.decode_loop.greedy` (its arguments, its result) with the
    fixed-shape step."""
    b, width = mask.shape
    dev, steps = embeds.device, dec.max_new_tokens
    cache, full, positions, logits = decode_loop.prefill(model, embeds, mask, steps, cache_len)
    vocab = model.config.get_text_config().vocab_size
    # the loop's state: fixed shapes, updated in place (the compiled pick is one graph for all steps)
    state = {
        "tokens": torch.full((b, steps), dec.pad_token_id, dtype=torch.long, device=dev),
        "seen": torch.zeros(b, vocab, dtype=torch.bool, device=dev),
        "done": torch.zeros(b, dtype=torch.bool, device=dev),
        "last": torch.zeros(b, dtype=torch.long, device=dev),
        "full": full,
        "pos": positions[:, -1:] + 1,
        "at": torch.tensor([width], device=dev),
        "t": torch.zeros((), dtype=torch.long, device=dev),
    }
    if WHOLE:  # the state is the whole step's CUDA graph's inputs: fixed addresses
        for tensor in state.values():
            torch._dynamo.mark_static_address(tensor)
    eos = -1 if dec.eos_token_id is None else dec.eos_token_id  # -1: no row ever stops
    hygiene = _rules(hygiene)
    _pick(logits, state, hygiene, dec.pad_token_id, eos)
    every = decode_loop.CHECK_EVERY
    for t in range(1, steps + 1):
        if dec.eos_token_id is not None and t % every == 0 and bool(state["done"].all()):
            return state["tokens"][:, :t]
        if t == steps:
            break
        (_step_fn(model) if WHOLE else _step)(model, cache, state, hygiene, dec.pad_token_id, eos)
    return state["tokens"]
