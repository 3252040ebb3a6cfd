"""prefix_bidir is what generation computes: teacher-forced scores under the policy equal a
bidirectional prefill of the prompt followed by cached one-token (causal) decode steps
(tests/oracles.py incremental_logits). prefill_bidir's teacher-forced scores do not: they read the
response they score.
"""

from __future__ import annotations

import pytest
import torch
from oracles import incremental_logits

from ablate.core.training.pretraining import random_model
from ablate.mask import masks
from ablate.mask.tiny import tiny_ministral3_config

VOCAB = 300
SHAPES = ((7, 4), (4, 2), (9, 5), (1, 3))  # (prompt, response); includes a 1-token prompt


@pytest.fixture(scope="module")
def model():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices; the machine's cores are shared
    yield random_model(tiny_ministral3_config(vocab_size=VOCAB), seed=0).eval()
    torch.set_num_threads(before)


def batch(side: str):
    g = torch.Generator().manual_seed(3)
    seqs = [torch.randint(4, VOCAB, (p + r,), generator=g) for p, r in SHAPES]
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, s in enumerate(seqs):
        cols = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[b, cols] = s
        mask[b, cols] = 1
    return ids, mask, [p for p, _ in SHAPES]


def teacher_forced(model, ids, mask, lengths, policy):
    with torch.no_grad():
        return model(**masks.policy_forward_kwargs(model, ids, mask, lengths, policy)).logits


def max_diff(a, b, mask):
    return (a - b)[mask.bool()].abs().max().item()


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("impl", ["eager", "sdpa", masks.PREFIX_SDPA])
def test_prefix_bidir_scores_equal_prefill_then_decode(model, impl, side):
    model.set_attn_implementation(impl)
    ids, mask, lengths = batch(side)
    tf = teacher_forced(model, ids, mask, lengths, "prefix_bidir")
    inc = incremental_logits(model, ids, mask, lengths, "prefix_bidir")
    assert max_diff(tf, inc, mask) <= 1e-5
    # The prefill really was bidirectional: it differs from the causal model's logits.
    causal = teacher_forced(model, ids, mask, lengths, "causal")
    assert max_diff(tf, causal, mask) > 1e-3


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_causal_scores_equal_cached_decode(model, impl):
    model.set_attn_implementation(impl)
    ids, mask, lengths = batch("right")
    tf = teacher_forced(model, ids, mask, lengths, "causal")
    inc = incremental_logits(model, ids, mask, lengths, "causal")
    assert max_diff(tf, inc, mask) <= 1e-5


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_prefill_bidir_scores_are_not_what_generation_computes(model, impl):
    model.set_attn_implementation(impl)
    ids, mask, lengths = batch("left")
    tf = teacher_forced(model, ids, mask, lengths, "prefill_bidir")
    inc = incremental_logits(model, ids, mask, lengths, "prefill_bidir")
    # Generation under prefill_bidir = the prefix_bidir computation ...
    prefix = incremental_logits(model, ids, mask, lengths, "prefix_bidir")
    assert max_diff(inc, prefix, mask) <= 1e-5
    # ... while its teacher-forced scores see the response, at every position of every row.
    for b in range(ids.shape[0]):
        row = mask[b].bool()
        assert (tf[b][row] - inc[b][row]).abs().amax(-1).min().item() > 1e-4, b
