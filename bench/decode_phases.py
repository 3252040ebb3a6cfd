"""Where one engine decode call's time goes at a batch: the prefill (the prompts' forward, eager)
and the steps, for the engine as it is and its variants, each against transformers' loop on the
same left-padded prompts (rows whose tokens are equal).

    PYTHONPATH=src:bench python bench/decode_phases.py --batches 64 512

Variants: ``engine`` (``ablate.core.models.generation.generate``, its own loop: the hygiene over the
generated columns only), ``prefill`` (the engine with its prefill compiled by Inductor, no CUDA
graphs: an experiment, not the engine), ``fresh`` (the engine with a new KV cache each call, as
before ``decode_loop.cache`` kept one: ``generation.release`` before every call). The variants
``dense`` (the hygiene as it was before: dense passes over every row's whole vocabulary each
step) and ``strided`` (the head given transformers' strided last-token view, without
``generation.contiguous_head``) of bench/results/bridge_speed_h100.md sections 7 and 8 ran
changed code, not the engine; they are this script as of commit 52c470c
(``git show 52c470c:bench/decode_phases.py``). A variant may be
named more than once (the first one run pays for the compiles in its warm-up, not in its
timings). Per variant: the call's seconds, the prefill's (the same call with one new token and
the same cache length), the steps' milliseconds each ((call - prefill) / (new - 1)), new
tokens/s, the CUDA graphs torch recorded during the timed call (each a synchronisation and a
capture of the whole step), and the first call's seconds with its compiles (warm-up).
Random-init Llama-3.1-8B, bf16; ``--shape tiny`` runs on the CPU (a check of the script, not a
measurement). ``--profile N``: after the table, the engine's prefill at each batch under torch's
profiler, its N costliest kernels.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from bench_generate import _dec
from bridge_work import build_lm, setup, sync
from references import transformers_generate

from ablate.core.models import generation


class CompiledPrefill:
    """``model`` with its prefill (``model(...)``) compiled; its steps compile ``model.forward``
    as the engine does."""

    def __init__(self, model):
        self._model = model
        self._prefill = torch.compile(lambda **kw: model(**kw), dynamic=False)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, **kw):
        return self._prefill(**kw)


class Recordings:
    """Counts the CUDA graphs torch's cudagraph trees record (the first of each compiled step,
    and again whenever a static input such as the KV cache has moved)."""

    def __init__(self):
        self.n = 0
        if torch.cuda.is_available():
            from torch._inductor import cudagraph_trees as trees

            record = trees.CUDAGraphTreeManager.record_function

            def counted(manager, *args, **kwargs):
                self.n += 1
                return record(manager, *args, **kwargs)

            trees.CUDAGraphTreeManager.record_function = counted


def timed(device, fn) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def profile_prefill(model, prompts, one, dev, top: int) -> None:
    """The engine's prefill (one new token) under torch's profiler: its ``top`` costliest
    operators by self device time, as the profiler's table."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        timed(dev, lambda: generation.generate(model, prompts, one))
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    print(f"\n{len(prompts)} rows, the prefill's costliest operators:\n")
    print(prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=60))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[64])
    ap.add_argument(
        "--variants", nargs="+", default=["engine", "prefill"],
        choices=["engine", "prefill", "fresh"],
    )  # fmt: skip
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--shape", choices=["real", "tiny"], default="real", help="tiny: a CPU check")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="the prefill's N top ops")
    a = ap.parse_args()
    s = setup(a.shape)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    target = build_lm(
        s.cfgs["target"], torch.bfloat16 if dev.type == "cuda" else torch.float32, dev
    )
    p = {**s.p, "max_new_tokens": a.new}
    d = target.config.hidden_size
    gpu = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU"
    print(
        f"# {gpu}, torch {torch.__version__}; {a.new} new tokens, "
        "hygiene on, prompts of 135-150 embeddings (left-padded)\n"
    )
    print("| batch | variant | rows equal to transformers' loop | call s | prefill ms | "
          "ms/step | new tok/s | graphs recorded in the call | warm-up s |\n"
          "|---|---|---|---|---|---|---|---|---|", flush=True)  # fmt: skip
    recordings = Recordings()
    for b in a.batches:
        g = torch.Generator().manual_seed(1000 + b)
        prompts = [
            (torch.randn(150 - i % 16, d, generator=g) * 0.02).to(dev, target.dtype)
            for i in range(b)
        ]
        # on CUDA: the static cache, left-padded batches
        dec = replace(_dec(p, b), cache_len=150 + a.new)
        one = replace(dec, max_new_tokens=1)
        ref = transformers_generate(target, prompts, dec)
        for name in a.variants:
            model = CompiledPrefill(target) if name == "prefill" else target

            def run(d, m=model, x=prompts, fresh=name == "fresh"):
                if fresh:
                    generation.release(m)
                return generation.generate(m, x, d)

            t0 = time.perf_counter()
            got = run(dec)  # warm-up: compiles
            run(one)
            warm = time.perf_counter() - t0
            same = sum(x == y for x, y in zip(got, ref, strict=True))
            before = recordings.n
            call = timed(dev, lambda r=run, d=dec: r(d))
            recorded = recordings.n - before
            pre = timed(dev, lambda r=run, o=one: r(o))
            step = (call - pre) / (a.new - 1)
            print(
                f"| {b} | {name} | {same}/{b} | {call:.3f} | {1e3 * pre:.1f} | "
                f"{1e3 * step:.2f} | {b * a.new / call:.0f} | {recorded} | {warm:.1f} |",
                flush=True,
            )
            if model is not target:  # the wrapper's own KV cache, beside the target's
                generation.release(model)
        if a.profile:
            profile_prefill(target, prompts, one, dev, a.profile)


if __name__ == "__main__":
    main()
