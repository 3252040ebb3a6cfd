"""Memory that divides: bytes per process of parameters, gradients and optimizer state of the tiny
mask model (ablate.mask.tiny, the tests' model) sharded by ablate.core.training.sharding at 1, 2 and
4 processes (torchrun, gloo on CPU or NCCL on GPUs), after one training step. Prints a table.

    PYTHONPATH=src python bench/bench_sharding.py [--nproc 1 2 4] [--optim adafactor adamw]

At N = 1 the sharded layout is measured too (the one-process recipe proper keeps bf16 weights +
fp32 masters instead: 2 + 4 bytes a parameter, its gradients in fp32 on the masters).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch


def _bytes(tensors) -> int:
    from ablate.core.training.sharding import local

    return sum(local(t).numel() * t.element_size() for t in tensors if t is not None)


def worker(optim: str) -> None:
    import torch.distributed as dist

    from ablate.core.execution import parallel
    from ablate.core.training.adafactor import FusedAdafactor
    from ablate.core.training.pretraining import random_model
    from ablate.core.training.sharding import shard
    from ablate.mask.tiny import tiny_ministral3_config

    parallel.init()
    if not dist.is_initialized():  # one process: a group of one, so the layout is the sharded one
        dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    model = shard(random_model(tiny_ministral3_config(), seed=0), torch.float32)
    params = list(model.parameters())
    if optim == "adafactor":
        kw = dict(lr=1e-3, scale_parameter=False, relative_step=False, warmup_init=False)
        opt = FusedAdafactor(params, **kw)
    else:
        opt = torch.optim.AdamW(params, lr=1e-3, foreach=False)
    ids = torch.randint(0, 1000, (2, 32))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    states = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    row = {
        "rank": parallel.rank(),
        "params": _bytes(params),
        "grads": _bytes(p.grad for p in params),
        "optim": _bytes(t for t in states if t.dim() > 0),
    }
    rows = [None] * parallel.world_size()
    dist.all_gather_object(rows, row)
    if parallel.rank() == 0:
        print("RESULT " + json.dumps(rows), flush=True)
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--optim", nargs="+", default=["adafactor", "adamw"])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    print(
        "| optimizer | processes | params MB/proc | grads MB/proc | optimizer MB/proc | total x N / total at 1 |"
    )
    print("|---|---|---|---|---|---|")
    for optim in args.optim:
        base = None
        for n in args.nproc:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={n}", __file__, "--worker", optim]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
            rows = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])
            worst = max(rows, key=lambda r: r["params"] + r["grads"] + r["optim"])
            total = worst["params"] + worst["grads"] + worst["optim"]
            base = base or total
            mb = [worst[k] / 1e6 for k in ("params", "grads", "optim")]
            print(
                f"| {optim} | {n} | {mb[0]:.2f} | {mb[1]:.2f} | {mb[2]:.3f} | {total * n / base:.3f} |"
            )


if __name__ == "__main__":
    main()
