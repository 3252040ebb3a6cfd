"""Torch behaviour that a workaround of ours depends on. Each test asserts the upstream behaviour
is still there and FAILS once torch changes it: then the named workaround can go.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

GUARD = "ablate.core.models.modeling.check_attention_device"


def test_cpu_flex_attention_has_no_backward():
    """Why the loader refuses flex_attention on CPU (training there cannot work)."""

    def causal(b, h, q, kv):
        return kv <= q

    q, k, v = (torch.randn(1, 2, 8, 16, requires_grad=True) for _ in range(3))
    block = create_block_mask(causal, 1, None, 8, 8, device="cpu")
    try:
        flex_attention(q, k, v, block_mask=block).sum().backward()
    except NotImplementedError as exc:
        assert "backward on CPU" in str(exc)
    else:
        pytest.fail(
            f"torch fixed the CPU flex bug (flex_attention now has a CPU backward): check the "
            f"forward too (issue 18's length-8 logits) and remove the guard in {GUARD}"
        )
