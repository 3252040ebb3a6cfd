"""The split-sdpa attention backend (ablate.mask.split_sdpa, ``sdpa_prefix_split``) on bare
tensors: prompt lengths give prefix-LM attention (one causal call plus each row's prompt block)
equal to a dense mask, forward and backward; none give sdpa; kwargs built for another backend,
lengths of another batch and dropout are refused. Through a model: tests/mask/test_masks.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from ablate.mask import masks, split_sdpa


def test_split_backend_refuses_kwargs_built_for_another():
    """Without the module hook (kwargs handed to another module), the split backend's attention
    function still checks what the kwargs were built for."""
    from transformers import AttentionInterface

    fn = AttentionInterface()[masks.PREFIX_SDPA]
    q = torch.zeros(1, 2, 3, 4)
    with pytest.raises(
        masks.BackendMismatchError, match="built for attention implementation 'sdpa'"
    ):
        fn(torch.nn.Module(), q, q, q, None, ablate_built_for_attn="sdpa")


def attention(*args, **kwargs):
    """The backend's attention function as transformers' attention layers call it: through the
    registry this module's import fills."""
    return AttentionInterface()[masks.PREFIX_SDPA](*args, **kwargs)


def test_prompt_token_index_is_each_rows_prompt_in_the_flat_batch():
    index = split_sdpa.prompt_token_index((2, 0, 3), 4, torch.device("cpu"))
    assert index.tolist() == [0, 1, 8, 9, 10]


def dense_prefix_lm(query, key, value, lengths):
    """The reference: one sdpa call under a dense prefix-LM mask (causal, plus each row's prompt
    block in both directions), output as (B, T, H, D) as the attention functions return it."""
    width = query.shape[2]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = torch.stack(
        [causal | (torch.arange(width)[:, None] < p) & (torch.arange(width) < p) for p in lengths]
    )
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed[:, None])
    return out.transpose(1, 2)


def qkv(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 2, 5, 4, generator=g, requires_grad=True) for _ in range(3)]


def test_prompt_lengths_give_prefix_lm_attention_and_its_gradients():
    """Causal attention with each row's prompt block recomputed in both directions equals a
    dense prefix-LM mask, forward and backward (a one-token prompt, a prompt of the whole row)."""
    module = torch.nn.Module()
    for lengths in ((3, 1), (5, 2)):
        inputs = qkv()
        out, _ = attention(module, *inputs, None, ablate_prompt_lengths=lengths)
        ref_inputs = [x.detach().clone().requires_grad_() for x in inputs]
        ref = dense_prefix_lm(*ref_inputs, lengths)
        torch.testing.assert_close(out, ref)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        (out * weights).sum().backward()
        (ref * weights).sum().backward()
        for x, r in zip(inputs, ref_inputs):
            torch.testing.assert_close(x.grad, r.grad)


def test_without_prompt_lengths_it_is_sdpa():
    q, k, v = (x.detach() for x in qkv())
    out, _ = attention(torch.nn.Module(), q, k, v, None)
    torch.testing.assert_close(out, sdpa_attention_forward(torch.nn.Module(), q, k, v, None)[0])


def test_lengths_of_another_batch_and_dropout_are_refused():
    q, k, v = (x.detach() for x in qkv())
    with pytest.raises(ValueError, match="1 prompt lengths for a batch of 2 rows"):
        attention(torch.nn.Module(), q, k, v, None, ablate_prompt_lengths=(3,))
    with pytest.raises(ValueError, match="does not support attention dropout"):
        attention(torch.nn.Module(), q, k, v, None, dropout=0.1, ablate_prompt_lengths=(3, 1))
