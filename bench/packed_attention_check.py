"""The engine's packed decode attention under torch.compile on a GPU, against a float64 reference.

    PYTHONPATH=src python bench/packed_attention_check.py

``generation.packed_gqa_attention`` for one query token of Llama-3.1-8B's shape (32 query heads on
8 KV heads, head dim 128) over a left-padded static cache, compiled as the decode step is
(``torch.compile``), in bf16: ||out - ref|| / ||ref|| against SDPA over ``repeat_kv`` copies in
float64 (the math the model had before), next to transformers' own compiled path (``repeat_kv``,
bf16), fresh random inputs per batch. bf16 operands land between 1e-3 and 1e-2; both paths should.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import torch
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

from ablate.core.models import generation


def main() -> int:
    dev = torch.device("cuda")
    module = SimpleNamespace(num_key_value_groups=4, is_causal=True, training=False)
    packed = torch.compile(generation.packed_gqa_attention)
    stock = torch.compile(sdpa_attention_forward)  # compiled: repeat_kv, as the old decode step
    print("| batch | cache | packed rel err | transformers' compiled rel err |\n|---|---|---|---|")
    for b, length in ((1, 278), (64, 278), (512, 324)):
        g = torch.Generator(device=dev).manual_seed(b)
        q = torch.randn(b, 32, 1, 128, generator=g, device=dev)
        k, v = (torch.randn(b, 8, length, 128, generator=g, device=dev) for _ in range(2))
        mask = torch.ones(b, 1, 1, length, dtype=torch.bool, device=dev)
        pad = torch.randint(0, length // 2, (b,), generator=g, device=dev)
        mask &= torch.arange(length, device=dev)[None, None, None] >= pad[:, None, None, None]
        mask[..., -20:] = False  # unwritten static-cache slots
        ref = torch.nn.functional.scaled_dot_product_attention(
            q.double(), repeat_kv(k.double(), 4), repeat_kv(v.double(), 4), attn_mask=mask
        ).transpose(1, 2)
        bf = [t.bfloat16() for t in (q, k, v)]
        errs = []
        for fn in (packed, stock):
            out = fn(module, *bf, mask, scaling=128**-0.5)[0].double()
            assert torch.isfinite(out).all()
            errs.append(float((out - ref).norm() / ref.norm()))
        print(f"| {b} | {length} | {errs[0]:.2e} | {errs[1]:.2e} |", flush=True)
        assert errs[0] < 1e-2, errs
    return 0


if __name__ == "__main__":
    sys.exit(main())
