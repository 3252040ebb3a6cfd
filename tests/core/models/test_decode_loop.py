"""The engine's own greedy loop (:mod:`ablate.core.models.decode_loop`) on a tiny random Llama on
CPU (eager): its hygiene is transformers' processors bit for bit, the n-gram followers, one kept
KV cache per model and shape, and the tokens after each row's EOS padded with the host asked once
per ``CHECK_EVERY`` steps. Through the engine (batches, buckets, both loops):
tests/core/models/test_generation.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from helpers import tiny_llama

from ablate.core.models import decode_loop

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("n", [2, 3])
def test_own_loop_hygiene_is_transformers_processors(n):
    """The own loop's hygiene over the generated columns only (gather and scatter) gives exactly
    transformers' processors' scores, bit for bit, at every step: repeated tokens, negative and
    positive scores, and tokens that follow several n-grams, banned by one and not another."""
    from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    from ablate.core.models import decode_loop

    g = torch.Generator().manual_seed(n)
    b, vocab, steps = 6, 11, 40  # a small vocabulary: repeats and conflicts at most steps
    tokens = torch.randint(0, vocab, (b, steps), generator=g)
    conflicts = 0
    for t in range(steps):
        scores = torch.randn(b, vocab, generator=g)
        seen = tokens[:, :t]
        want = RepetitionPenaltyLogitsProcessor(1.1)(seen, scores.clone()) if t else scores.clone()
        want = NoRepeatNGramLogitsProcessor(n)(seen, want) if t else want
        got = decode_loop._repetition(scores.clone(), tokens, t, 1.1)
        got = decode_loop._ngram_ban(got, tokens, t, n)
        assert torch.equal(got, want), t
        followers = decode_loop.ngram_followers(tokens, t, n)
        if followers is not None:  # a token after a banned n-gram and after one that is not
            for nxt, match in zip(*followers, strict=True):
                banned = set(nxt[match].tolist())
                conflicts += len(banned & set(nxt[~match].tolist()))
    assert conflicts


def test_ngram_followers_name_the_token_after_each_earlier_n_minus_1_tokens():
    tokens = torch.tensor([[5, 6, 5, 6, 5, 0, 0]])
    assert decode_loop.ngram_followers(tokens, 1, 3) is None  # no whole trigram yet
    nxt, match = decode_loop.ngram_followers(tokens, 5, 3)  # generated: 5 6 5 6 5; last two: 6 5
    assert nxt.tolist() == [[5, 6, 5]]  # after (5 6), (6 5), (5 6)
    assert match.tolist() == [[False, True, False]]  # only (6 5) is the last two: 6 is banned


@pytest.fixture
def model():
    m = tiny_llama(32, 64, layers=1, heads=2, kv_heads=1, vocab=50)
    yield m
    decode_loop.release(m)


def test_one_cache_is_kept_per_model_and_shape_zeroed_for_each_call(model):
    kept = decode_loop.cache(model, 2, 24)
    embeds = torch.randn(2, 5, 32)
    kv, _, _, _ = decode_loop.prefill(model, embeds, torch.ones(2, 5, dtype=torch.long), 3, 24)
    assert kv is kept and kept.layers[0].keys.abs().sum() > 0
    again = decode_loop.cache(model, 2, 24)
    assert again is kept and kept.layers[0].keys.abs().sum() == 0  # reset, not reallocated
    other = decode_loop.cache(model, 3, 24)
    assert other is not kept and decode_loop.cache(model, 3, 24) is other
    decode_loop.release(model)
    assert model not in decode_loop._CACHES


def test_tokens_after_each_rows_eos_are_pad_and_the_loop_stops_at_a_check(model):
    embeds = torch.randn(1, 6, 32, generator=torch.Generator().manual_seed(3))
    mask = torch.ones(1, 6, dtype=torch.long)
    steps = decode_loop.CHECK_EVERY + 8

    def greedy(eos):
        dec = SimpleNamespace(max_new_tokens=steps, pad_token_id=0, eos_token_id=eos)
        return decode_loop.greedy(model, embeds, mask, dec, 32, None)[0].tolist()

    free = greedy(None)
    assert len(free) == steps
    eos = free[2]
    first = free.index(eos)
    stopped = greedy(eos)
    assert len(stopped) == decode_loop.CHECK_EVERY  # every row stopped: asked at the first check
    assert stopped[: first + 1] == free[: first + 1] and set(stopped[first + 1 :]) <= {0}
