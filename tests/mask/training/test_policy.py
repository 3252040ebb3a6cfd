"""ablate.mask.training.policy: the mask policy's recipe for the core's loop: a batch's forward
under the policy (a packed batch with its per-example mask), the packing switch, its refusals
(packed steps equal to unpacked ones, through this recipe: test_packing.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ablate.core.training.data import PolicyCollator
from ablate.core.training.params import TrainingConfigError
from ablate.mask import masks
from ablate.mask.tiny import tiny_ministral3_config
from ablate.mask.training import packing
from ablate.mask.training import policy as mask_policy
from ablate.mask.training.params import resolve_params

#: three pairs (prompt tokens first), short enough that two share a packed row of 16 tokens
EXAMPLES = [
    {"input_ids": [1, 5, 6, 7], "prompt_length": 2},
    {"input_ids": [1, 8, 9], "prompt_length": 1},
    {"input_ids": [1, 4, 4, 4, 4, 4], "prompt_length": 3},
]


def _params(packed: bool):
    return resolve_params(dict(packing=packed, packing_row_tokens=64, max_seq_len=64), "finetune")


def test_row_tokens_below_max_seq_len_is_refused():
    p = resolve_params(dict(packing=True, packing_row_tokens=32, max_seq_len=64), "finetune")
    with pytest.raises(TrainingConfigError, match="packing_row_tokens=32"):
        mask_policy.recipe("causal", p, 11)


def test_packing_is_decided_by_the_policys_recipe_alone():
    """``packing`` is the mask study's key: its recipe reads it (the core loop reads no study's
    key: tests/guards/test_layering.py), packed micro-batches for true, the loop's own for
    false."""
    unpacked = replace(
        mask_policy.recipe("causal", _params(False), 11), collator=PolicyCollator(11)
    )
    assert unpacked.packer is None
    assert not any(packing.is_packed(b) for b in unpacked.micro_batches(EXAMPLES, 1))
    packed = mask_policy.recipe("causal", _params(True), 11)
    assert packed.packer is not None
    assert all(packing.is_packed(b) for b in packed.micro_batches(EXAMPLES, 1))


def test_an_unknown_policy_is_refused_before_the_run():
    with pytest.raises(masks.UnknownPolicyError, match="'bidir'.*choose one of"):
        mask_policy.recipe("bidir", _params(False), 11)


@pytest.mark.parametrize("policy", ["causal", "prefix_bidir"])
def test_a_packed_batch_runs_under_its_per_example_mask(policy):
    """A packed batch gets the packed row's mask and positions (each example from position 0); a
    padded one the policy's forward over its padding mask, as the evaluation runs it."""
    from transformers import Ministral3ForCausalLM

    sizes = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, head_dim=8)
    model = Ministral3ForCausalLM(
        tiny_ministral3_config(vocab_size=64, num_hidden_layers=1, num_key_value_heads=2, **sizes)
    )
    row = packing.PackedCollator(0, row_tokens=16, pad_to_multiple_of=16)(EXAMPLES)
    got = mask_policy.batch_forward_kwargs(model, row, policy)
    want = packing.packed_forward_kwargs(model, row, policy)
    assert got.keys() == want.keys() and torch.equal(got["attention_mask"], want["attention_mask"])
    assert got["position_ids"].tolist()[0][:7] == [0, 1, 2, 3, 0, 1, 2]
    padded = PolicyCollator(0)(EXAMPLES)
    got = mask_policy.batch_forward_kwargs(model, padded, policy)
    want = masks.policy_forward_kwargs(
        model, padded["input_ids"], padded["attention_mask"], padded["prompt_lengths"], policy
    )
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(got[key], value) if torch.is_tensor(value) else got[key] == value, key
