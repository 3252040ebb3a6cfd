"""Where a training step's GPU time goes: torch.profiler over some steps of a training run,
CUDA kernel time summed by category (matmuls, attention, optimizer, head/loss, norms and other
elementwise work, copies and casts, collectives) plus the time the GPU sat idle between kernels.
Collectives (NCCL kernels) run on their own stream beside the compute: the table also gives the
step's time in compute kernels, in collectives, in collectives while no compute kernel ran
(exposed: what a second GPU costs that overlap did not hide), and idle (no kernel at all), each
from the union of the kernels' intervals.

Used by bench/bench_finetune.py and bench/bench_packing.py --profile. The categories are regexes
over kernel names (cuBLAS, CUTLASS, nvjet, flash/cuDNN attention, the fused AdamW multi-tensor
kernels, Triton kernels from torch.compile or Liger); a kernel no regex names counts as "other",
listed by name so the table never hides where time went.
"""

from __future__ import annotations

import re
import time

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

#: category -> kernel-name regex, first match wins (order matters: a fused Triton kernel that
#: mentions "rsqrt" is a norm, a cuBLAS kernel that mentions "bias" is still a matmul)
CATEGORIES: dict[str, str] = {
    "collective": r"nccl",
    "matmul": r"gemm|nvjet|cutlass|xmma|wgmma|sm90_|sm80_|ampere_|cublas",
    "attention": r"flash|fmha|attention|attn|cudnn",
    "optimizer": r"multi_tensor|adam|foreach|_amp_|lerp|addcdiv|addcmul",
    "head/loss": r"softmax|nll|cross_entropy|logsumexp|log_softmax|gather|scatter",
    "norm/act/rope (fused)": r"triton|fused",
    "copy/cast": r"copy|cast|memcpy|memset|convert|to_copy|Memcpy|Memset",
    "elementwise/reduce": r"elementwise|vectorized|reduce|unrolled|index|where|cat|fill",
}


def category(name: str) -> str:
    for cat, rx in CATEGORIES.items():
        if re.search(rx, name, re.IGNORECASE):
            return cat
    return "other"


class StepProfiler:
    """Profiles the ``n`` steps run inside ``with profiler:`` (CUDA kernels only), from a device
    sync before the first to one after the last."""

    def __init__(self, n: int):
        self.n = n
        self.prof = None
        self.wall_s = 0.0
        self._t0 = 0.0

    def __enter__(self):
        torch.cuda.synchronize()
        self.prof = profile(activities=[ProfilerActivity.CUDA])
        self.prof.__enter__()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize()
        self.wall_s = time.perf_counter() - self._t0
        self.prof.__exit__(*exc)
        return False

    def table(self) -> dict:
        """{wall_s, kernel_s, idle_s, by_category: {cat: s}, top_other: [(name, s)]} per step."""
        if self.prof is None or not self.wall_s:
            return {}
        by: dict[str, float] = {}
        other: dict[str, float] = {}
        for e in self.prof.key_averages():
            t = e.self_device_time_total / 1e6  # us -> s
            if t <= 0:
                continue
            cat = category(e.key)
            by[cat] = by.get(cat, 0.0) + t
            if cat == "other":
                other[e.key] = other.get(e.key, 0.0) + t
        kernel = sum(by.values())
        per = 1.0 / self.n
        compute, comm = [], []  # (start, end) in us of each kernel on the device
        for e in self.prof.events():
            if e.device_type == DeviceType.CUDA and e.time_range.end > e.time_range.start:
                span = (e.time_range.start, e.time_range.end)
                (comm if category(e.name) == "collective" else compute).append(span)
        busy = covered(compute + comm)
        return dict(
            wall_s=self.wall_s * per,
            kernel_s=kernel * per,
            idle_s=max(self.wall_s - busy, 0.0) * per,
            compute_s=covered(compute) * per,
            collective_s=covered(comm) * per,
            exposed_collective_s=(busy - covered(compute)) * per,
            by_category={k: v * per for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
            top_other=[
                (k[:90], v * per) for k, v in sorted(other.items(), key=lambda kv: -kv[1])[:8]
            ],
        )


def covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``spans`` ((start, end) in microseconds)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total / 1e6


def print_table(label: str, t: dict) -> None:
    """A markdown table of one profiled row: seconds per step and share of the step's wall time."""
    if not t:
        print(f"{label}: no profile (too few steps?)")
        return
    wall = t["wall_s"]
    print(f"\n### {label}: {wall * 1e3:.1f} ms per step (profiled)\n")
    print("| where | ms/step | share of wall |")
    print("|---|---|---|")
    for cat, s in t["by_category"].items():
        print(f"| {cat} | {s * 1e3:.1f} | {s / wall:.3f} |")
    print(
        f"| GPU idle (no kernel: launch gaps, host work) | {t['idle_s'] * 1e3:.1f} | "
        f"{t['idle_s'] / wall:.3f} |"
    )
    for key, what in [
        ("compute_s", "compute kernels (union)"),
        ("collective_s", "collectives (union)"),
        ("exposed_collective_s", "collectives with no compute beside them (exposed)"),
    ]:
        if key in t:
            print(f"| {what} | {t[key] * 1e3:.1f} | {t[key] / wall:.3f} |")
    for name, s in t["top_other"]:
        print(f"| other: `{name}` | {s * 1e3:.2f} | {s / wall:.3f} |")
