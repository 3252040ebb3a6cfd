"""transformers behaviour that a workaround of ours depends on. Each test asserts the upstream
behaviour is still there and FAILS once transformers changes it: then the named workaround can go.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, RepetitionPenaltyLogitsProcessor

WORKAROUND = "ablate.core.generation.embeds_repetition_penalty"


def tiny_llama(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, vocab: int):
    """A random-init Llama of that shape (seed 0, eval mode, pad id 0)."""
    cfg = LlamaConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


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
