"""The optimizer step alone on the Ministral-3-3B parameter shapes (one GPU): transformers'
Adafactor loop against FusedAdafactor at several group sizes, each as the Trainer runs it (bf16
weights, fp32 masters through MasterWeightsOptimizer, the gradient clip, random bf16 gradients
delivered by a backward into the hooks). Prints a markdown table; --out writes the rows as JSON.

    PYTHONPATH=src:bench python bench/bench_optimizer.py [--sizes 1 8 13 26 64] [--steps 10]
        [--shape real|tiny] [--out bench/results/bench_optimizer_h100.json]

Columns: `host ms/step`, the time the host takes to queue clip + step (no sync: what the GPU
waits for when a step is host-bound); `ms/step`, host to GPU finished (synchronised); `first step
s`, the first step in a fresh process with an empty inductor cache (compiling), and `cached s`,
the same in a second process reusing that cache (the next finetune on the same machine). Each row
runs in its own processes (--row, internal), so no row compiles for another.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from transformers.optimization import Adafactor

# the HF Trainer's kwargs for optim: adafactor (trainer_optimizer._get_adafactor); the real lr
KW = dict(scale_parameter=False, relative_step=False, warmup_init=False, lr=2e-5)
DYNAMIC: bool | None = False  # --dynamic: FusedAdafactor's ``dynamic`` for its rows


def build(shape: str) -> list[torch.nn.Parameter]:
    import bench_finetune as bf

    if shape == "tiny":
        bf.DEVICE = "cpu"
        bf.SHAPE.update(bf.SMOKE_SHAPE)
    model = bf.build_model(torch.bfloat16, "sdpa")
    return [p for p in model.parameters() if p.requires_grad]


def run_row(size: int | None, shape: str, steps: int) -> dict:
    """One row in this process: ``size`` None is HF's Adafactor, else FusedAdafactor's group_size."""
    from ablate.core.training import adafactor
    from ablate.core.training.optim import MasterWeightsOptimizer

    params = build(shape)
    groups = [  # the Trainer's two groups: decay on matrices, none on norms
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    if size is None:
        opt = MasterWeightsOptimizer(groups, Adafactor, dict(KW))
    else:
        kw = dict(KW, group_size=size, dynamic=DYNAMIC)
        opt = MasterWeightsOptimizer(groups, adafactor.FusedAdafactor, kw)
    cuda = params[0].is_cuda
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gen = torch.Generator(device=params[0].device).manual_seed(0)
    host, wall = [], []
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=gen, device=p.device).to(p.dtype) for p in params]
        torch.autograd.backward(params, grad_tensors=grads)  # into the hooks, as a real backward
        del grads
        sync()
        t0 = time.perf_counter()
        opt.clip_(1.0)
        opt.step()
        host.append(time.perf_counter() - t0)
        sync()
        wall.append(time.perf_counter() - t0)
    return dict(
        optimizer=type(opt.inner).__name__,
        group_size=size,
        dynamic=DYNAMIC if size is not None else None,
        first_step_s=wall[0],
        host_ms=1e3 * statistics.median(host[2:]),
        ms=1e3 * statistics.median(wall[2:]),
        peak_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
        device=torch.cuda.get_device_name(0) if cuda else "cpu",
        torch=torch.__version__,
        n_params=sum(p.numel() for p in params),
    )


def child(size: int | None, shape: str, steps: int, cache: str) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
    cmd = [sys.executable, __file__, "--row", str(size), "--shape", shape, "--steps", str(steps)]
    cmd += ["--dynamic"] * bool(DYNAMIC)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"row {size}: exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[1, 8, 13, 26, 64])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--shape", choices=["real", "tiny"], default="real")
    ap.add_argument("--dynamic", action="store_true", help="compile the groups with dynamic=True")
    ap.add_argument("--out")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global DYNAMIC
    DYNAMIC = True if args.dynamic else False
    if args.row is not None:  # one row, in its own process
        size = None if args.row == "None" else int(args.row)
        print(json.dumps(run_row(size, args.shape, args.steps)), flush=True)
        return 0
    if args.shape == "real" and not torch.cuda.is_available():
        print("bench_optimizer needs a CUDA GPU (or --shape tiny)", file=sys.stderr)
        return 2
    rows = []
    for size in [None, *args.sizes]:
        with tempfile.TemporaryDirectory() as cache:
            row = child(size, args.shape, args.steps, cache)
            row["cached_first_step_s"] = child(size, args.shape, 3, cache)["first_step_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"command": " ".join(sys.argv), "rows": rows}, f, indent=1)
    print(f"\n# {rows[0]['device']}, torch {rows[0]['torch']}, {rows[0]['n_params'] / 1e9:.2f} B")
    cols = "optimizer | group size | dynamic | host ms/step | ms/step | first step s | cached s"
    print(f"\n| {cols} | peak GB |\n" + "|---" * 8 + "|")
    for r in rows:
        peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.1f}"
        print(
            f"| {r['optimizer']} | {r['group_size'] or '-'} | {r.get('dynamic', '-')} | "
            f"{r['host_ms']:.1f} | {r['ms']:.1f} | "
            f"{r['first_step_s']:.1f} | {r['cached_first_step_s']:.1f} | {peak} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
