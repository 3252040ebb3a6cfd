"""One decode step's projections at the bridge target's shape (Llama-3.1-8B: hidden 4096, query
4096, key and value 1024 each, gate and up 14336) for a batch of rows, separate as transformers'
attention and MLP run them against fused into one matrix product: microseconds a layer, timed
as 32 layers (each its own weights) replayed in a CUDA graph, as the compiled decode step runs
them, the weights' bytes over that time, and whether the fused product's values are bit for bit
the separate ones'.

    PYTHONPATH=src python bench/decode_projections.py --rows 64 512

A measurement of what fusing would give, not the engine: transformers' Llama attention calls
its q, k and v projections one by one, so fusing them means replacing its forward. CUDA only.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

LAYERS, HIDDEN = 32, 4096
GROUPS = {"q, k, v": (4096, 1024, 1024), "gate, up": (14336, 14336)}


def timed_us(fn, reps: int = 20) -> float:
    """Microseconds a layer of ``fn`` (all layers) replayed in a CUDA graph."""
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        fn()
        fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / reps / LAYERS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[64])
    a = ap.parse_args()
    torch.manual_seed(0)
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, bf16, {LAYERS} layers\n")
    print("| rows | projections | separate us a layer | fused us a layer | separate TB/s | "
          "fused TB/s | fused bit for bit |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for name, outs in GROUPS.items():
        parts = [
            [torch.randn(n, HIDDEN, device="cuda", dtype=torch.bfloat16) * 0.02 for n in outs]
            for _ in range(LAYERS)
        ]
        fused = [torch.cat(layer) for layer in parts]
        gb = sum(outs) * HIDDEN * 2 / 1e9
        for rows in a.rows:
            x = torch.randn(rows, HIDDEN, device="cuda", dtype=torch.bfloat16)
            sep = timed_us(lambda x=x, p=parts: [F.linear(x, w) for layer in p for w in layer])
            one = timed_us(lambda x=x, f=fused: [F.linear(x, w) for w in f])
            same = torch.equal(
                torch.cat([F.linear(x, w) for w in parts[0]], -1), F.linear(x, fused[0])
            )
            print(
                f"| {rows} | {name} | {sep:.1f} | {one:.1f} | {gb / sep * 1e3:.2f} | "
                f"{gb / one * 1e3:.2f} | {'yes' if same else 'no'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
