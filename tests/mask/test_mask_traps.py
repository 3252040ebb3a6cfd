"""Pins the two traps that masks.py avoids, on the installed transformers.

1. The seed's patch ``module.is_causal = False`` on every attention module: honoured only by
   sdpa, and only when no mask is materialised (batch of one, no padding). On a padded batch
   the model silently stays causal, on every backend.
2. A hand-made boolean 4D mask: sdpa reads it as "True = attend", but eager *adds* it to the
   scores (True/False become +1/0), so eager attends everywhere.

The per-call ``model(..., is_causal=False)`` switch, which masks.py uses, works in both cases.
If one of these tests fails, transformers changed the behaviour: the failure says which trap
changed, so masks.py and docs/masks.md can be revisited (not the test "fixed").
"""

from __future__ import annotations

import pytest
import torch

from ablate.core.training.pretraining import random_model
from ablate.mask import masks
from ablate.mask.tiny import tiny_ministral3_config

VOCAB = 300
T, J = 10, 7  # sequence length; the token that gets changed


def model_for(impl: str):
    model = random_model(tiny_ministral3_config(vocab_size=VOCAB), seed=0).eval()
    model.set_attn_implementation(impl)
    return model


def batches():
    """(unpadded single row, padded batch of two) before and after changing token J of row 0."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(5, VOCAB, (1, T), generator=g)
    x2 = x.clone()
    x2[0, J] = (x[0, J] + 17) % (VOCAB - 5) + 5
    second = torch.zeros(1, T, dtype=torch.long)
    second[0, :6] = x[0, :6]
    mask = torch.ones(2, T, dtype=torch.long)
    mask[1, 6:] = 0  # row 1 right-padded: the batch needs a materialised mask
    return (x, x2), (torch.cat([x, second]), torch.cat([x2, second]), mask)


@torch.no_grad()
def leak(model, a, b, **kw) -> float:
    """Largest change of row-0 logits at positions before J when token J changes."""
    la = model(a, **kw).logits
    lb = model(b, **kw).logits
    return (la[0, :J] - lb[0, :J]).abs().max().item()


def patch_is_causal(model) -> int:
    n = 0
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False
            n += 1
    return n


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_module_is_causal_patch_is_a_noop_on_padded_batch(impl):
    model = model_for(impl)
    assert patch_is_causal(model) == model.config.num_hidden_layers
    _, (a, b, mask) = batches()
    got = leak(model, a, b, attention_mask=mask)
    assert got == 0.0, (
        f"TRAP CHANGED: with module.is_causal=False a padded batch under {impl} is now "
        f"bidirectional (|d|={got:.2e}); transformers honours the patch now. Revisit masks.py."
    )


def test_module_is_causal_patch_only_works_for_unpadded_sdpa():
    """Why the seed believed the patch worked: sdpa with one unpadded row skips the mask and
    takes the module flag; eager builds a causal mask and ignores it."""
    (x, x2), _ = batches()
    sdpa, eager = model_for("sdpa"), model_for("eager")
    patch_is_causal(sdpa)
    patch_is_causal(eager)
    got_sdpa, got_eager = leak(sdpa, x, x2), leak(eager, x, x2)
    assert got_sdpa > 1e-3, (
        f"TRAP CHANGED: patched sdpa no longer leaks on one row ({got_sdpa:.2e})"
    )
    assert got_eager == 0.0, f"TRAP CHANGED: patched eager now leaks on one row ({got_eager:.2e})"


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_per_call_is_causal_false_works(impl):
    model = model_for(impl)
    (x, x2), (a, b, mask) = batches()
    assert leak(model, x, x2, is_causal=False) > 1e-3
    assert leak(model, a, b, attention_mask=mask, is_causal=False) > 1e-3
    # ... and it is what prefill_bidir uses; it does not stick to the model afterwards.
    kw = masks.policy_forward_kwargs(model, a, mask, [5, 3], "prefill_bidir")
    assert kw["is_causal"] is False
    assert leak(model, a, b, attention_mask=mask) == 0.0


def test_raw_boolean_mask_is_not_applied_by_eager():
    """A causal bool mask (True = attend): sdpa applies it, eager adds +1/0 and attends to all."""
    (x, x2), _ = batches()
    causal_bool = torch.ones(T, T, dtype=torch.bool).tril()[None, None]
    got_sdpa = leak(model_for("sdpa"), x, x2, attention_mask=causal_bool)
    got_eager = leak(model_for("eager"), x, x2, attention_mask=causal_bool)
    assert got_sdpa == 0.0, f"sdpa no longer applies a boolean 4D mask (|d|={got_sdpa:.2e})"
    assert got_eager > 1e-3, (
        f"TRAP CHANGED: eager now applies a boolean 4D mask (|d|={got_eager:.2e}); the "
        "hand-made-mask warning in masks.py/docs may be relaxed."
    )
    # The masks built through masking_utils are applied by both.
    for impl in ("eager", "sdpa"):
        model = model_for(impl)
        mask = torch.ones_like(x)
        # prompt = first J tokens: positions < J see each other but never token J.
        kw_a = masks.policy_forward_kwargs(model, x, mask, [J], "prefix_bidir")
        kw_b = masks.policy_forward_kwargs(model, x2, mask, [J], "prefix_bidir")
        with torch.no_grad():
            la, lb = model(**kw_a).logits, model(**kw_b).logits
        assert (la[0, :J] - lb[0, :J]).abs().max().item() == 0.0, impl
