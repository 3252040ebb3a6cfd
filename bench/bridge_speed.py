"""Where the bridge's GPU time goes: the translator's training step and the engine's decode step,
profiled at the real shape (random weights), with the speed options the pipeline can take.

    PYTHONPATH=src:bench python bench/bridge_speed.py train --rows 10 --compile 0 1 --profile
    PYTHONPATH=src:bench python bench/bridge_speed.py train --rows 10 40 --group 10 --compile 0
    PYTHONPATH=src:bench python bench/bridge_speed.py decode --batches 1 64 512

train: the step the pipeline trains, ``ablate.core.training.loop.step`` on the trainer
``ablate.bridge.training.recipe.translator_trainer`` builds (``Pair.loss`` over synthetic GSM8K-shaped items
of ``bridge_lengths.gsm8k``, the KL term on; the optimizer of ``recipe.optimizer``, the clip and the
schedule of the loop and, unless ``--fp32``, TF32 matmuls as ``entries.train_entry``: the pipeline's recipe)
on the target Llama-3.1-8B (the source is built on the meta device: only its config is read). The
source states (random) and the teacher rows (one target forward) are read from the pair's caches,
``Pair.cache`` and ``Pair.teacher_cache``, as a run with both caches does: here in-memory readers
of those tensors, already on the GPU (``bridge_work.FixedStates``: no copy from the host). Per
variant (rows per step x compiled decoder layers): seconds per step (median of ``--steps``), model
FLOPs per step (``ablate.bridge.cost.example_flops``, the planner's count), MFU against the H100
SXM's dense bf16 peak (989 TFLOP/s), peak memory. ``--profile``: one step under CUDA events at
the region boundaries (translator forward, target forward, head + losses, head backward, target
backward, translator backward (up to the loop's clip), optimizer) and torch.profiler's busy time
(idle = wall - kernels).
``--group N``: InfoNCE's negatives in groups of N rows (``infonce_group``) wherever the rows are
a multiple of N, so ``--rows 10 40 --group 10`` compares one GPU's share of the seed's step (10
rows, 4 GPUs) with the same loss at 40 rows on one GPU. ``--shape tiny`` runs on the CPU (a check
of the script, not a measurement).

decode: ``ablate.core.models.generation.generate`` (the engine) at each batch (``--paths``: 1 the
static cache through transformers' loop, bench/references.py ``transformers_generate``, 2 through
the engine's own, the engine itself, 0 the dynamic cache through transformers' loop), a 150-token
embedded
prompt, ``--new`` new tokens, hygiene on: ms per step and, under torch.profiler, GPU busy time
per step and the top kernels (where a step's time goes).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time

import torch
from bridge_work import (
    FixedStates,
    build_lm,
    build_translator,
    n_params,
    peak_gb,
    pipeline_pair,
    pipeline_step,
    reset_peak,
    setup,
    sync,
)

from ablate.bridge import cost
from ablate.bridge import params as bridge_params
from ablate.core.training import loop

PEAK_BF16 = 989e12  # H100 SXM dense bf16 (datasheet, no sparsity)


class Marks:
    """CUDA events at named points of one step (forward in call order, backward through hooks)."""

    def __init__(self):
        self.events: list[tuple[str, torch.cuda.Event]] = []
        self.on = False

    def __call__(self, name: str) -> None:
        if self.on:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.events.append((name, e))

    def table(self) -> list[tuple[str, float]]:
        torch.cuda.synchronize()
        ev = self.events
        return [(b[0], a[1].elapsed_time(b[1])) for a, b in zip(ev, ev[1:], strict=False)]


def instrument(pair, tr, marks: Marks):
    """Event marks around the translator, the target body and (through hooks) their backward."""
    body, fwd_tr = pair.target.base_model, tr.forward

    def translator_forward(*a, **k):
        marks("start")
        out = fwd_tr(*a, **k)
        marks("translator forward")
        if out.requires_grad:
            out.register_hook(lambda g: marks("target backward") or g)
        return out

    body_fwd = body.forward

    def body_forward(*a, **k):
        out = body_fwd(*a, **k)
        marks("embeddings + target forward")
        h = out.last_hidden_state
        if h.requires_grad:
            h.register_hook(lambda g: marks("head + losses, forward and backward") or g)
        return out

    tr.forward, body.forward = translator_forward, body_forward
    clip = loop.clip  # what loop.step calls after the step's backward

    def clip_marked(*a, **k):
        marks("translator backward")
        return clip(*a, **k)

    loop.clip = clip_marked

    def restore():
        tr.forward, body.forward = fwd_tr, body_fwd
        loop.clip = clip

    return restore


def train_cmd(a) -> None:
    from ablate.core.training import speed

    s = setup(a.shape)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with torch.device("meta"):
        source = build_lm(s.cfgs["source"], torch.bfloat16, torch.device("meta"))
    target = build_lm(s.cfgs["target"], torch.bfloat16, dev)
    sizes = dict(src=n_params(source), tgt=n_params(target))
    for comp in a.compile:
        for rows in a.rows:
            group = a.group if a.group and rows % a.group == 0 else None
            p = {**s.p, "batch_size": rows, "infonce_group": group}
            s2 = type(s)(**{**s.__dict__, "p": p})
            pair, items = pipeline_pair(s2, (source, target), rows)
            pair.compiled = bool(comp)  # the target's layers compiled, as entries.train_entry
            tr = build_translator(s2, source, target, dev).train()
            torch.backends.cuda.matmul.allow_tf32 = False
            if not a.fp32:  # the pipeline's recipe (ablate.bridge.training.entries.train_entry)
                speed.tf32_matmuls(dev)
            h = torch.randn(rows, s.n.source, source.config.hidden_size, device=dev)
            mask = torch.ones(rows, s.n.source, device=dev).long()
            pair.cache = FixedStates(items, h.to(torch.bfloat16), mask)  # the source's cache
            pair.teacher_cache = FixedStates(items, *pair.teacher_states(items))  # the KL's
            trainer, step = pipeline_step(pair, tr, items, p)
            name = f"rows {rows}, compiled layers {bool(comp)}" + (", fp32" if a.fp32 else "")
            name += f", InfoNCE groups of {group}" if group else ""
            try:
                reset_peak(dev)
                t_first = time.perf_counter()
                for _ in range(a.warmup):
                    step()
                sync(dev)
                first = time.perf_counter() - t_first
                times = []
                for _ in range(a.steps):
                    t0 = time.perf_counter()
                    step()
                    sync(dev)
                    times.append(time.perf_counter() - t0)
            except torch.OutOfMemoryError as exc:
                print(f"| {name} | OOM {str(exc)[:80]} |", flush=True)
                del pair, tr, trainer, step
                torch.cuda.empty_cache()
                continue
            peak = peak_gb(dev)
            flops = rows * cost.example_flops(
                bridge_params.check(bridge_params.resolve(p)),
                s.n,
                sizes["src"],
                sizes["tgt"],
                n_params(tr),
                True,
                True,
            )
            med = statistics.median(times)
            print(
                f"| {name} | {med:.4f} | {min(times):.4f}-{max(times):.4f} | "
                f"{rows * cost.example_tokens(p['K'], s.n) / med:.0f} | {flops / med / 1e12:.1f} | "
                f"{flops / med / PEAK_BF16:.3f} | {'-' if peak is None else f'{peak:.1f}'} | "
                f"{first:.1f} |",
                flush=True,
            )
            if a.profile and rows == a.rows[0] and dev.type == "cuda":
                profile_step(pair, tr, step, name, a)
            del pair, tr, trainer, step
            if dev.type == "cuda":
                torch.cuda.empty_cache()


def profile_step(pair, tr, step, name, a) -> None:
    """One step of ``step`` (``pipeline_step``'s) in regions of CUDA events, one under
    torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    marks = Marks()
    restore = instrument(pair, tr, marks)
    step()
    sync(torch.device("cuda"))
    marks.on = True  # the regions: events only (the profiler's own overhead would stretch them)
    t0 = time.perf_counter()
    step()
    marks("optimizer")
    sync(torch.device("cuda"))
    wall = time.perf_counter() - t0
    regions = marks.table()
    restore()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        step()
        sync(torch.device("cuda"))
        wall_prof = time.perf_counter() - t0
    busy = sum(
        e.self_device_time_total for e in prof.key_averages() if e.device_type.name == "CUDA"
    )
    print(f"\n### {name}: one step's regions (CUDA events; wall {wall * 1e3:.1f} ms)\n")
    print("| region | ms | share |\n|---|---|---|")
    for r, ms in regions:
        print(f"| {r} | {ms:.1f} | {ms / (wall * 1e3):.2f} |")
    print(
        f"| GPU busy (kernels; a profiled step of {wall_prof * 1e3:.1f} ms) | {busy / 1e3:.1f} | - |"
    )
    print(
        f"| idle (wall - kernels) | {wall * 1e3 - busy / 1e3:.1f} | {1 - busy / 1e6 / wall:.2f} |\n"
    )
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=a.top), flush=True)


def decode_cmd(a) -> None:
    from bench_generate import _dec
    from references import transformers_generate
    from torch.profiler import ProfilerActivity, profile

    from ablate.core.models import generation

    s = setup(a.shape)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    target = build_lm(s.cfgs["target"], getattr(torch, a.dtype), dev)
    p = {**s.p, "max_new_tokens": a.new}
    names = {0: "dynamic", 1: "static", 2: "static, own loop"}
    d = target.config.hidden_size
    if a.check:
        check_tokens(target, p, a.batches, d, dev)
    print("| batch | path | ms/step | new tok/s | GPU busy ms/step |\n|---|---|---|---|---|")
    for b in a.batches:
        g = torch.Generator().manual_seed(b)
        embeds = (torch.randn(b, 150, d, generator=g) * 0.02).to(dev, target.dtype)
        prompts = list(embeds.unbind(0))
        dec = _dec(p, b)
        for static in a.paths:
            # 2: the engine (its own loop, ablate.core.models.decode_loop); 1, 0: transformers' loop
            if static == 2:
                run = generation.generate
            else:
                run = functools.partial(transformers_generate, static=bool(static))
            run(target, prompts, dec)
            sync(dev)
            t0 = time.perf_counter()
            run(target, prompts, dec)
            sync(dev)
            sec = time.perf_counter() - t0
            path = names[static]
            row = f"| {b} | {path} | {1e3 * sec / a.new:.2f} | {b * a.new / sec:.0f} |"
            if not a.top or dev.type != "cuda":
                print(row + " - |", flush=True)
                continue
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                run(target, prompts, dec)
                sync(dev)
            ka = prof.key_averages()
            busy = sum(e.self_device_time_total for e in ka if e.device_type.name == "CUDA")
            print(row + f" {busy / 1e3 / a.new:.2f} |", flush=True)
            if a.top:
                print(ka.table(sort_by="self_cuda_time_total", row_limit=a.top), flush=True)
                print(ka.table(sort_by="self_cpu_time_total", row_limit=a.top), flush=True)


def check_tokens(target, p: dict, batches: list[int], d: int, dev: torch.device) -> None:
    """The own loop's tokens against transformers' loop (both static), prompts of 135-150
    embeddings so batches are left-padded (the CUDA path pads; CPU tests run exact lengths)."""
    from bench_generate import _dec
    from references import transformers_generate

    from ablate.core.models import generation

    print("| batch | rows | rows equal (own loop vs transformers' loop) |\n|---|---|---|")
    for b in batches:
        g = torch.Generator().manual_seed(1000 + b)
        prompts = [
            (torch.randn(150 - i % 16, d, generator=g) * 0.02).to(dev, target.dtype)
            for i in range(b)
        ]
        dec = _dec(p, b)  # on CUDA: the static cache, left-padded batches
        outs = [
            transformers_generate(target, prompts, dec),
            generation.generate(target, prompts, dec),
        ]
        same = sum(x == y for x, y in zip(*outs, strict=True))
        print(f"| {b} | {b} | {same} |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--shape", choices=["real", "tiny"], default="real")
    t.add_argument("--rows", type=int, nargs="+", default=[10])
    t.add_argument("--group", type=int, default=None, help="InfoNCE rows per group")
    t.add_argument("--compile", type=int, nargs="+", default=[0, 1])
    t.add_argument("--steps", type=int, default=5)
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--profile", action="store_true")
    t.add_argument("--fp32", action="store_true", help="fp32 translator matmuls (no TF32)")
    t.add_argument("--top", type=int, default=25)
    d = sub.add_parser("decode")
    d.add_argument("--batches", type=int, nargs="+", default=[1, 64, 512])
    d.add_argument("--shape", choices=["real", "tiny"], default="real")
    d.add_argument(
        "--paths", type=int, nargs="+", default=[1, 0], help="1 static, 0 dynamic, 2 own loop"
    )
    d.add_argument("--check", action="store_true", help="first compare the own loop's tokens")
    d.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    d.add_argument("--new", type=int, default=64)
    d.add_argument("--top", type=int, default=0)
    a = ap.parse_args(argv)
    if not torch.cuda.is_available() and getattr(a, "shape", "real") == "real":
        ap.error("needs a CUDA GPU (train --shape tiny runs on the CPU)")
    if a.cmd == "train":
        print(
            "| variant | s/step (median) | min-max | tokens/s | TFLOP/s | MFU | peak GB | "
            "warm-up s |\n|---|---|---|---|---|---|---|---|",
            flush=True,
        )
        train_cmd(a)
    else:
        decode_cmd(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
