"""ablate.core.training.loss: the corpus-vocabulary head loss, and the one loss normalisation
(share_of_mean; a study recipe's own loss, which the loop does not normalise a second time:
test_recipe.py); the fast head (loss_sum's lm_head at labelled positions
only) equal to the model's own loss under each mask policy, and a head loss refused without it."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic_rows
from references import policy_loss_sum

from ablate.core.models.modeling import load_causal_lm
from ablate.core.training.data import PolicyCollator
from ablate.core.training.loss import head_loss_sum, share_of_mean, vocab_head_loss
from ablate.core.training.params import TrainingConfigError
from ablate.mask import sft_data


def test_one_process_share_is_the_mean():
    assert share_of_mean(torch.tensor(6.0), 4) == 1.5


def test_vocab_head_loss_is_cross_entropy_over_its_rows():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False)
    hidden, targets = torch.randn(12, 8), torch.tensor([3, 7, 7, 11, 3, 40] * 2)
    # every row: the full loss, to float rounding
    full = vocab_head_loss(range(50))(head, hidden, targets)
    assert torch.allclose(full, head_loss_sum(head, hidden, targets), rtol=1e-6)
    # a subset: the softmax over those rows only (the same logits, fewer in the normaliser)
    ids = [3, 7, 11, 40, 45]
    logits = hidden @ head.weight[ids].T
    local = torch.tensor([ids.index(t) for t in targets.tolist()])
    want = torch.nn.functional.cross_entropy(logits, local, reduction="sum")
    assert torch.allclose(vocab_head_loss(ids)(head, hidden, targets), want, rtol=1e-6)
    assert vocab_head_loss(ids)(head, hidden, targets) < full  # fewer competitors
    with pytest.raises(TrainingConfigError, match=r"\[3\] are outside"):
        vocab_head_loss([7, 11, 40])(head, hidden, targets)


@pytest.mark.parametrize("policy", ["causal", "prefix_bidir", "prefill_bidir"])
def test_fast_head_loss_equals_model_loss(tiny_model_dir, tokenizer, policy):
    model = load_causal_lm(tiny_model_dir)
    pairs = sft_data.tokenize_rows(tokenizer, synthetic_rows(3), 64)
    batch = PolicyCollator(tokenizer.pad_token_id)(
        [{"input_ids": p.input_ids, "prompt_length": p.prompt_length} for p in pairs]
    )
    fast_sum, n = policy_loss_sum(model, batch, policy, fast_head=True)
    slow_sum, n2 = policy_loss_sum(model, batch, policy, fast_head=False)
    assert int(n) == int(n2) == int((batch["labels"][:, 1:] != -100).sum()) > 0
    torch.testing.assert_close(fast_sum, slow_sum, rtol=1e-5, atol=1e-4)
    if policy == "causal":  # the model's own loss (its own shift and mean over labelled tokens)
        own = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        ).loss
        torch.testing.assert_close(fast_sum / n, own, rtol=1e-5, atol=1e-5)
    else:  # the policy changes the forward: a different loss than causal
        causal_sum, _ = policy_loss_sum(model, batch, "causal")
        assert not torch.allclose(fast_sum, causal_sum)


def test_a_head_loss_without_the_fast_head_is_refused(tiny_model_dir, tokenizer):
    """A custom head loss only runs on the fast head: where the model's own loss would run
    instead (a wrapped model, fast_head off), the run stops rather than ignore it."""
    from ablate.core.training.loss import vocab_head_loss

    model = load_causal_lm(tiny_model_dir)
    ids = torch.tensor([tokenizer("the cat sat")["input_ids"]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    head_loss = vocab_head_loss(ids.flatten().tolist())
    loss, n = policy_loss_sum(model, batch, "causal", head_loss=head_loss)
    assert torch.isfinite(loss) and n == ids.shape[1] - 1
    with pytest.raises(TrainingConfigError, match="needs the fast head"):
        policy_loss_sum(model, batch, "causal", fast_head=False, head_loss=head_loss)
