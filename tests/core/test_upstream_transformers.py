"""transformers behaviour that a workaround of ours depends on. Each test asserts the upstream
behaviour is still there and FAILS once transformers changes it: then the named workaround can go.
"""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_llama
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import RepetitionPenaltyLogitsProcessor

WORKAROUND = "ablate.core.models.generation.embeds_repetition_penalty"


def test_generate_from_embeddings_exempts_padded_rows_first_tokens_from_the_repetition_penalty(
    monkeypatch,
):
    """Given embeddings, ``generate`` hands the repetition penalty each row's count of
    left-padding positions as ``prompt_ignore_length``, which the processor applies to the
    generated ids: a row padded by k has its first k generated tokens exempt."""
    model = tiny_llama(32, 64, layers=1, heads=2, kv_heads=2, vocab=64)
    seen = []
    init = RepetitionPenaltyLogitsProcessor.__init__

    def spy(self, penalty, prompt_ignore_length=None):
        seen.append(prompt_ignore_length)
        init(self, penalty, prompt_ignore_length)

    monkeypatch.setattr(RepetitionPenaltyLogitsProcessor, "__init__", spy)
    embeds = torch.randn(2, 5, 32)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 1, 1]])  # row 1 left-padded by 3
    with torch.no_grad():
        model.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=2, do_sample=False,
            repetition_penalty=1.5, pad_token_id=0,
        )  # fmt: skip
    ignore = seen[-1]
    if not (isinstance(ignore, torch.Tensor) and ignore.tolist() == [0, 3]):
        pytest.fail(
            f"transformers changed how generate builds its repetition penalty from embeddings "
            f"(prompt_ignore_length {ignore!r}): check whether {WORKAROUND} is still needed"
        )
    # ... and applied to the generated ids only, it exempts row 1's first 3 of them
    proc = RepetitionPenaltyLogitsProcessor(1.5, prompt_ignore_length=ignore)
    scores = torch.ones(2, 64)
    out = proc(torch.tensor([[7, 8, 9, 10], [7, 8, 9, 10]]), scores.clone())
    assert out[0, 7:11].tolist() == pytest.approx([1 / 1.5] * 4)
    assert out[1, 7:10].tolist() == [1.0] * 3 and out[1, 10] == pytest.approx(1 / 1.5)


class _Ops(TorchDispatchMode):
    """The aten operators run inside it."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def head_ops(model, ids) -> list[str]:
    """The matrix products of ``model``'s last-token logits (``logits_to_keep=1``) of ``ids``."""
    with torch.no_grad(), _Ops() as mode:
        model(ids, logits_to_keep=1)
    return [op for op in mode.ops if op in ("aten.bmm", "aten.mm", "aten.addmm")]


def test_a_frozen_models_last_token_head_runs_as_a_bmm_over_copies_of_its_weight(monkeypatch):
    """``logits_to_keep`` hands the head ``hidden[:, -1:, :]`` (non-contiguous for B > 1); torch
    folds it into one mm only while the weight requires a gradient, so a frozen model's head is a
    bmm over B stride-0 copies of the weight (``ablate.core.models.generation.contiguous_head``)."""
    from ablate.core.models import generation

    model = tiny_llama(16, 32, layers=1, heads=2, kv_heads=1, vocab=100)
    ids = torch.randint(1, 100, (3, 5))
    assert head_ops(model, ids)[-1] == "aten.mm"  # trainable: folded
    model.requires_grad_(False)
    assert head_ops(model, ids)[-1] == "aten.bmm"  # frozen: the upstream behaviour
    full = model(ids).logits[:, -1]
    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("cuda")))
    generation.contiguous_head(model)  # as on CUDA
    assert head_ops(model, ids)[-1] == "aten.mm"
    with torch.no_grad():
        torch.testing.assert_close(model(ids, logits_to_keep=1).logits[:, -1], full)
