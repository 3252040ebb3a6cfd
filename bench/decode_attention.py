"""One decode step's attention at the bridge target's shape (Llama-3.1-8B: 32 query heads over 8
key/value heads, head dim 128) over a left-padded static cache, by implementation: microseconds a
layer, timed as 32 layers (each its own cache) replayed in a CUDA graph, as the compiled decode
step runs them.

    PYTHONPATH=src python bench/decode_attention.py --batches 64 128 512 --cache 278

Implementations (each under ``torch.compile``, the way the engine's step runs it):
- ``sdpa``: the engine's packed attention (``generation.packed_gqa_attention``): the 4 query
  heads of a group packed as 4 query rows over their shared key/value head, a boolean mask;
  SDPA picks its backend (cuDNN on an H100);
- ``sdpa-efficient``, ``sdpa-cudnn``: the same call with SDPA's backend forced;
- ``math``: the same attention written as two matmuls and a float32 softmax (Inductor's kernels);
- ``flex``: ``flex_attention`` with the mask as a ``mask_mod`` reading the mask tensor and GQA
  (its decoding kernel splits the keys over thread blocks).
Each output is compared with float64 attention (relative error), so a faster one that is wrong
shows it. CUDA only.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

HEADS, KV_HEADS, DIM = 32, 8, 128


def packed_sdpa(q, k, v, mask, backend=None):
    b, h, _, d = q.shape
    g = h // k.shape[1]
    qp = q.reshape(b, h // g, g, d)
    if backend is None:
        out = F.scaled_dot_product_attention(qp, k, v, attn_mask=mask)
    else:
        from torch.nn.attention import sdpa_kernel

        with sdpa_kernel([backend]):
            out = F.scaled_dot_product_attention(qp, k, v, attn_mask=mask)
    return out.reshape(b, h, 1, d)


def math_attention(q, k, v, mask):
    b, h, _, d = q.shape
    g = h // k.shape[1]
    qp = q.reshape(b, h // g, g, d)
    s = (qp @ k.transpose(-1, -2)).float() * d**-0.5
    s = s.masked_fill(~mask, float("-inf"))
    return (s.softmax(-1).to(v.dtype) @ v).reshape(b, h, 1, d)


def reference(q, k, v, mask):
    b, h, _, d = q.shape
    g = h // k.shape[1]
    qp = q.double().reshape(b, h // g, g, d)
    s = (qp @ k.double().transpose(-1, -2)) * d**-0.5
    s = s.masked_fill(~mask, float("-inf"))
    return (s.softmax(-1) @ v.double()).reshape(b, h, 1, d)


def build(batch: int, cache: int, layers: int, device, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    dt = torch.bfloat16
    q = torch.randn(batch, HEADS, 1, DIM, generator=g).to(device, dt)
    ks = [
        torch.randn(batch, KV_HEADS, cache, DIM, generator=g).to(device, dt) for _ in range(layers)
    ]
    vs = [
        torch.randn(batch, KV_HEADS, cache, DIM, generator=g).to(device, dt) for _ in range(layers)
    ]
    # left padding of 0-15 positions, keys written up to 3/4 of the cache (the rest unwritten)
    pad = torch.randint(0, 16, (batch,), generator=g)
    pos = torch.arange(cache)
    valid = (pos[None] >= pad[:, None]) & (pos[None] < cache * 3 // 4)
    mask = valid[:, None, None, :].to(device)
    return q, ks, vs, mask


def flex_fn(mask, batch, cache, device):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    m = mask[:, 0, 0, :]

    def mask_mod(b, h, q_idx, kv_idx):
        return m[b, kv_idx]

    block = create_block_mask(mask_mod, batch, None, 1, cache, device=device)

    def run(q, k, v, _mask):
        return flex_attention(q, k, v, block_mask=block, enable_gqa=True)

    return run


def time_graph(fn, q, ks, vs, mask, reps: int) -> float:
    """Microseconds per layer: 32 layers captured in one CUDA graph, replayed ``reps`` times."""
    for _ in range(3):
        for k, v in zip(ks, vs, strict=True):
            fn(q, k, v, mask)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for k, v in zip(ks, vs, strict=True):
            fn(q, k, v, mask)
    graph.replay()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        graph.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps / len(ks) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 128, 512])
    ap.add_argument("--cache", type=int, default=278)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    dev = torch.device("cuda")
    from torch.nn.attention import SDPBackend

    print(f"# decode attention, {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"cache {a.cache}, {HEADS} query heads over {KV_HEADS} KV heads, head dim {DIM}, bf16\n")
    print("| batch | implementation | us per layer | rel. error vs float64 |")
    print("|---|---|---|---|")
    for batch in a.batches:
        q, ks, vs, mask = build(batch, a.cache, a.layers, dev)
        ref = reference(q, ks[0], vs[0], mask)
        impls = {
            "sdpa": lambda q, k, v, m: packed_sdpa(q, k, v, m),
            "sdpa-efficient": lambda q, k, v, m: packed_sdpa(
                q, k, v, m, SDPBackend.EFFICIENT_ATTENTION
            ),
            "sdpa-cudnn": lambda q, k, v, m: packed_sdpa(q, k, v, m, SDPBackend.CUDNN_ATTENTION),
            "math": math_attention,
            "flex": flex_fn(mask, batch, a.cache, dev),
        }
        for name, fn in impls.items():
            if a.only and name not in a.only:
                continue
            try:
                comp = torch.compile(fn, fullgraph=True)
                out = comp(q, ks[0], vs[0], mask)
                err = ((out.double() - ref).norm() / ref.norm()).item()
                us = time_graph(comp, q, ks, vs, mask, a.reps)
                print(f"| {batch} | {name} | {us:.1f} | {err:.2e} |", flush=True)
            except Exception as exc:  # an implementation this torch cannot run: say so, go on
                print(f"| {batch} | {name} | failed: {type(exc).__name__}: {str(exc)[:90]} | |")
        del q, ks, vs, mask
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
