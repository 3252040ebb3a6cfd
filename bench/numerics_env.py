"""What the numerics environment does to a CPU training run, and what each run's record says.

One child process per setting (MKL and torch read these variables once, at start): the embedded
default's tiny Ministral-3 (its architecture, a smaller vocabulary), the same seed and batches,
a few fused-AdamW steps at the default pretraining's learning rate on one thread. The table:
torch's CPU capability, whether a float32 matrix product has the first setting's bits, the
first step whose weights differ from the first setting's, the largest weight difference after
the last step, and what ``ablate diff`` would name between the two runs' ``hardware``.

    python bench/numerics_env.py --out bench/results/numerics_env_cpu.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = (
    "",
    "MKL_CBWR=COMPATIBLE",
    "MKL_CBWR=AVX2",
    "MKL_ENABLE_INSTRUCTIONS=AVX2",
    "ATEN_CPU_CAPABILITY=avx2",
    "ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2",
)


def child(steps: int, vocab: int, weights_out: str) -> None:
    import torch

    from ablate.core.outputs import provenance
    from ablate.core.training.pretraining import random_model
    from ablate.mask import tiny

    torch.set_num_threads(1)  # the pipeline's pretraining runs on one thread too
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 384, generator=gen), torch.randn(384, 512, generator=gen)
    matmul = hashlib.sha256((a @ b).numpy().tobytes()).hexdigest()[:12]
    model = random_model(tiny.tiny_ministral3_config(vocab_size=vocab), seed=5)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0, fused=True)
    hashes = []
    for _ in range(steps):
        ids = torch.randint(0, vocab, (16, 64), generator=gen)
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        hashes.append(hashlib.sha256(flat.numpy().tobytes()).hexdigest()[:12])
    torch.save(flat, weights_out)
    print(json.dumps({"matmul": matmul, "steps": hashes, "hardware": provenance.hardware()}))


def run_setting(setting: str, steps: int, vocab: int, weights: Path) -> dict:
    env = {**os.environ, **dict(kv.split("=", 1) for kv in setting.split())}
    cmd = [sys.executable, __file__, "--child", "--steps", str(steps), "--vocab", str(vocab)]
    out = subprocess.run(
        [*cmd, "--weights", str(weights)], env=env, capture_output=True, text=True, check=True
    )
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "weights": weights}


def table(settings: list[str], steps: int, vocab: int) -> str:
    import torch

    from ablate.core.outputs.provenance import changed_keys

    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_setting(s, steps, vocab, Path(tmp) / f"{i}.pt") for i, s in enumerate(settings)]
        base = runs[0]
        w0 = torch.load(base["weights"])
        lines = [
            "| setting | torch capability | matmul bits as first | first step that differs | "
            "max abs weight diff | `ablate diff` names |",
            "|---|---|---|---|---|---|",
        ]
        for s, r in zip(settings, runs, strict=True):
            first = next(
                (i + 1 for i, (x, y) in enumerate(zip(base["steps"], r["steps"])) if x != y), None
            )
            diff = (torch.load(r["weights"]) - w0).abs().max().item()
            named = [
                c for c in changed_keys(base["hardware"], r["hardware"]) if "hostname" not in c
            ]
            lines.append(
                f"| {s or '(as started)'} | {r['hardware'].get('torch_cpu_capability')} | "
                f"{'yes' if r['matmul'] == base['matmul'] else 'no'} | {first or 'none'} | "
                f"{diff:.3g} | {'; '.join(named) or 'nothing'} |"
            )
    hw = base["hardware"]
    head = (
        f"{hw.get('cpu_model')} ({hw.get('cpu_vendor')}, family/model/stepping "
        f"{hw.get('cpu_family_model_stepping')}, {hw.get('cpu_count')} cores), torch "
        f"{torch.__version__}, {hw['numerics'].get('blas')} {hw['numerics'].get('mkl')}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}; {steps} steps, vocab {vocab}"
    )
    return head + "\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=8192, help="the tiny model's vocabulary")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), help='e.g. "MKL_CBWR=AVX2"')
    ap.add_argument("--out", help="also write the table here (markdown)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.steps, args.vocab, args.weights)
        return 0
    text = table(args.settings, args.steps, args.vocab)
    print(text)
    if args.out:
        command = " ".join(["python bench/numerics_env.py", *(argv or sys.argv[1:])])
        Path(args.out).write_text(f"# The numerics environment on a CPU\n\n    {command}\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
