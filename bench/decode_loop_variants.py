"""The fixed-shape decode loop of bench/decode_loop_fused.py, compiled several ways, against
transformers' loop on the same left-padded prompts: rows whose tokens are equal, the first step
where one differs, and the speed (a second, timed call).

    PYTHONPATH=src:bench python bench/decode_loop_variants.py --batches 64

Variants: ``graph`` (the step compiled whole, CUDA graphs), ``default`` (compiled whole, no
graphs), ``eager`` (nothing compiled), ``split`` (the forward compiled with CUDA graphs as the
engine compiles it, the hygiene and pick compiled apart). Random-init Llama-3.1-8B (CUDA only).
"""

from __future__ import annotations

import argparse
import time

import decode_loop_fused as fused
import torch
from bench_generate import _dec
from bridge_work import build_lm, setup
from references import transformers_generate

from ablate.core.models import decode_loop, generation

VARIANTS = {
    "graph": (True, {"mode": "reduce-overhead", "fullgraph": True}),
    "default": (True, {"fullgraph": True}),
    "eager": (True, None),
    "split": (False, None),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[64])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--new", type=int, default=128)
    a = ap.parse_args()
    s = setup("real")
    dev = torch.device("cuda")
    target = build_lm(s.cfgs["target"], torch.bfloat16, dev)
    p = {**s.p, "max_new_tokens": a.new}
    d = target.config.hidden_size
    decode_loop.greedy = fused.greedy  # the engine's own loop, swapped for the experiment
    print("| batch | variant | rows equal | first differing step (min) | ms/step | new tok/s |")
    print("|---|---|---|---|---|---|", flush=True)
    for b in a.batches:
        g = torch.Generator().manual_seed(1000 + b)
        prompts = [
            (torch.randn(150 - i % 16, d, generator=g) * 0.02).to(dev, target.dtype)
            for i in range(b)
        ]
        dec = _dec(p, b)  # on CUDA: the static cache, left-padded batches
        ref = transformers_generate(target, prompts, dec)
        for name in a.variants:
            torch._dynamo.reset()
            fused._COMPILED.clear()
            fused.WHOLE, fused.WHOLE_COMPILE = VARIANTS[name]
            try:
                got = generation.generate(target, prompts, dec)
                same = sum(x == y for x, y in zip(got, ref, strict=True))
                firsts = [
                    next((i for i, (u, v) in enumerate(zip(x, y, strict=False)) if u != v), None)
                    for x, y in zip(got, ref, strict=True)
                ]
                first = min((f for f in firsts if f is not None), default="-")
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                generation.generate(target, prompts, dec)
                torch.cuda.synchronize()
                sec = time.perf_counter() - t0
                print(
                    f"| {b} | {name} | {same}/{b} | {first} | {1e3 * sec / a.new:.2f} | "
                    f"{b * a.new / sec:.0f} |",
                    flush=True,
                )
            except Exception as exc:  # a variant this torch cannot compile: say so, go on
                print(f"| {b} | {name} | failed: {type(exc).__name__}: {str(exc)[:150]} |")


if __name__ == "__main__":
    main()
