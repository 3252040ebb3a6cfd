"""The fast scorer equals one full forward per request (the seed's way) under every policy."""

from __future__ import annotations

import random

import pytest
import torch
from references import score_naive

from ablate.core.training.pretraining import random_model
from ablate.mask.masks import POLICIES
from ablate.mask.scoring import prepare, score_requests
from ablate.mask.tiny import tiny_ministral3_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    # Small vocab: the scorer's logic does not depend on it, and it keeps this file fast.
    return random_model(tiny_ministral3_config(vocab_size=512), seed=1).eval()


@pytest.fixture(scope="module")
def requests_():
    """Multiple-choice shaped: contexts shared by 1-4 continuations of 1-6 tokens."""
    rng = random.Random(0)
    reqs = []
    for _ in range(14):
        ctx = [rng.randrange(3, 512) for _ in range(rng.randint(1, 14))]
        for _ in range(rng.randint(1, 4)):
            reqs.append((ctx, [rng.randrange(3, 512) for _ in range(rng.randint(1, 6))]))
    reqs.append(([5], [7]))  # shortest possible request
    return reqs


def _assert_same(got, ref, tol=1e-4):
    assert len(got) == len(ref)
    for i, ((lp, g), (lp_ref, g_ref)) in enumerate(zip(got, ref)):
        assert abs(lp - lp_ref) < tol, (i, lp, lp_ref)
        assert g == g_ref, i


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("max_length", [64, 9])  # 9: left truncation cuts most contexts
def test_scorer_equals_naive(model, requests_, policy, max_length):
    ref = score_naive(model, requests_, policy, max_length=max_length)
    for share in (True, False):
        for budget in (4096, 24):  # 24 tokens: many small batches, mixed lengths
            got = score_requests(
                model,
                requests_,
                policy,
                max_length=max_length,
                share_contexts=share,
                max_batch_tokens=budget,
            )
            _assert_same(got, ref)


def test_policies_are_applied(model, requests_):
    scores = {p: score_requests(model, requests_, p, max_length=64) for p in POLICIES}
    multi_ctx = [i for i, (c, _) in enumerate(requests_) if len(c) > 1]
    for a, b in [("causal", "prefix_bidir"), ("causal", "prefill_bidir")]:
        assert max(abs(scores[a][i][0] - scores[b][i][0]) for i in multi_ctx) > 1e-3
    # One-token continuation: the whole input row is the context, so prefix == prefill;
    # longer continuations see their own future tokens only under prefill_bidir.
    for i, (_ctx, cont) in enumerate(requests_):
        d = abs(scores["prefix_bidir"][i][0] - scores["prefill_bidir"][i][0])
        if len(cont) == 1:
            assert d < 1e-4
    long = [i for i, (c, k) in enumerate(requests_) if len(k) > 2 and len(c) > 1]
    assert (
        max(abs(scores["prefix_bidir"][i][0] - scores["prefill_bidir"][i][0]) for i in long) > 1e-3
    )


def test_truncation_matches_lm_eval():
    # lm-eval: (ctx + cont)[-(max_length + 1):][:-1]; the context part of the row is the prefix.
    (row,) = prepare([([1, 2, 3, 4, 5], [6, 7])], max_length=4)
    assert row.inp == (3, 4, 5, 6) and row.n_prompt == 3 and row.targets == (6, 7)
    (row,) = prepare([([1, 2], [3, 4, 5])], max_length=3)
    assert row.inp == (2, 3, 4) and row.n_prompt == 1
    with pytest.raises(ValueError, match="exceeds max_length"):
        prepare([([1], [2, 3, 4])], max_length=2)
    with pytest.raises(ValueError, match="non-empty"):
        prepare([([], [2])], max_length=8)


def test_unknown_policy(model):
    with pytest.raises(ValueError, match="unknown mask policy"):
        score_requests(model, [([1], [2])], "bidirectional")


def test_greedy_is_argmax_with_ties():
    """A target tied with an earlier maximum is not greedy (argmax takes the first)."""
    from ablate.mask.scoring import _token_scores

    head = torch.nn.Linear(4, 6, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(6, 4))
        head.weight[5] = head.weight[1]  # row 5 ties row 1
    hidden = torch.tensor([[0.0, 3.0, 0.0, 0.0]] * 3 + [[0.0, 0.0, 2.0, 0.0]])
    targets = torch.tensor([1, 5, 2, 2])
    logp, greedy = _token_scores(head, hidden, targets, None)
    assert greedy.tolist() == [True, False, False, True]
    logits = head(hidden)
    assert greedy.tolist() == (logits.argmax(-1) == targets).tolist()
    assert torch.equal(logp, logits.gather(1, targets[:, None])[:, 0] - logits.logsumexp(-1))
