"""Where FSDP2 at world size 1 loses against the one-GPU recipe (bf16 weights + fp32 masters).

A random-init Mistral-style model of the Ministral-3-3B text shape (``--shape real``; ``tiny`` checks
the script on CPU), B x 1024 tokens, eager, fused AdamW on fp32 parameters in every variant. The
variants change one FSDP2 knob at a time, so the table attributes the gap:

- ``master``: bf16 weights, fp32 master copies, grads cast to fp32 (the one-GPU recipe, plainly);
- ``fsdp``: ``fully_shard`` per decoder layer and at the root, bf16 compute, fp32 params and reduce;
- ``fsdp_keep``: as ``fsdp`` with ``reshard_after_forward=False`` (no second fp32->bf16 cast of
  each layer's weights for the backward);
- ``fsdp_bf16_reduce``: as ``fsdp`` with bf16 gradient reduction (diagnostic: the gradient cast);
- ``fsdp_compile``: as ``fsdp`` with each decoder layer compiled.

``--profile`` adds, per variant, the GPU kernel time of one step split into matmuls, attention, the
copies and casts FSDP adds (all-gather copy-in/out, chunk-cat, dtype copies), the optimizer and the
rest. Prints markdown tables. Usage::

    PYTHONPATH=src:bench python bench/bench_fsdp_one_gpu.py --shape real --batch 2 --profile
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch
import torch.distributed as dist
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from transformers import MistralConfig, MistralForCausalLM

VARIANTS = ("master", "fsdp", "fsdp_keep", "fsdp_bf16_reduce", "fsdp_compile")
#: kernel-name fragments -> the bucket of the profile table (first match wins)
BUCKETS = (
    ("optimizer", ("adam", "foreach", "multi_tensor", "clip", "norm_kernel")),
    ("attention", ("flash", "fmha", "attention", "sdpa", "cudnn")),
    ("fsdp copies/casts", ("chunk_cat", "all_gather", "split_with_sizes", "copy_", "to_copy", "memcpy dtod",
                           "direct_copy", "unrolled_elementwise_kernel<at::native::direct")),
    ("matmul", ("gemm", "cutlass", "sm90", "nvjet", "cublas")),
)  # fmt: skip


def config(shape: str) -> tuple[MistralConfig, int]:
    if shape == "real":
        cfg = MistralConfig(
            hidden_size=3072, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=32,
            num_key_value_heads=8, head_dim=128, vocab_size=131072, max_position_embeddings=4096,
            tie_word_embeddings=True,
        )  # fmt: skip
        return cfg, 1024
    cfg = MistralConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=256, tie_word_embeddings=True,
    )  # fmt: skip
    return cfg, 32


def build(variant: str, cfg: MistralConfig, dev: str):
    torch.manual_seed(0)
    with torch.device(dev):
        model = MistralForCausalLM(cfg)
    if variant == "master":
        model = model.to(torch.bfloat16)
        master = [p.detach().float().clone().requires_grad_(True) for p in model.parameters()]
        return model, master
    reduce = torch.bfloat16 if variant == "fsdp_bf16_reduce" else torch.float32
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=reduce)
    for layer in model.model.layers:
        fully_shard(layer, mp_policy=mp, reshard_after_forward=variant != "fsdp_keep")
        if variant == "fsdp_compile":
            layer.compile()
    fully_shard(model, mp_policy=mp)
    return model, list(model.parameters())


def step_fn(variant: str, model, params: list[torch.Tensor], opt, ids: torch.Tensor):
    live = list(model.parameters())

    def step():
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        if variant == "master":
            for m, p in zip(params, live):
                m.grad, p.grad = p.grad.float(), None
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if variant == "master":
            with torch.no_grad():
                torch._foreach_copy_(live, params)
        return out.loss.detach()

    return step


def bucket(name: str) -> str:
    low = name.lower()
    for label, keys in BUCKETS:
        if any(k in low for k in keys):
            return label
    return "other"


def profile(step, dev: str) -> dict[str, float]:
    """GPU kernel ms of one step, per kernel name (annotations such as ``Optimizer.step#...``,
    and FSDP's ``FSDP::...`` ranges, which span kernels already counted, left out)."""
    acts = [torch.profiler.ProfilerActivity.CPU]
    if dev == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        step()
        if dev == "cuda":
            torch.cuda.synchronize()
    ms: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", 0.0) if dev == "cuda" else 0.0
        annotation = "#" in e.key or e.key.startswith(("ProfilerStep", "FSDP::"))
        if t and e.device_type == torch.autograd.DeviceType.CUDA and not annotation:
            ms[e.key] += t / 1e3
    return dict(ms)


def print_profiles(profiles: dict[str, dict[str, float]], top: int) -> None:
    """Kernel ms by kind per variant, then each variant's kernels that grew most over the first."""
    cols = [b for b, _ in BUCKETS] + ["other"]
    print("\nGPU kernel ms in one step, by kind:\n")
    print("| variant | " + " | ".join(cols) + " | total |")
    print("|---" * (len(cols) + 2) + "|")
    for variant, ms in profiles.items():
        kinds: dict[str, float] = defaultdict(float)
        for key, t in ms.items():
            kinds[bucket(key)] += t
        cells = " | ".join(f"{kinds.get(c, 0.0):.1f}" for c in cols)
        print(f"| {variant} | {cells} | {sum(ms.values()):.1f} |")
    base_name, base = next(iter(profiles.items()))
    for variant, ms in list(profiles.items())[1:]:
        grew = sorted(
            ((ms.get(k, 0.0) - base.get(k, 0.0), k) for k in set(ms) | set(base)), reverse=True
        )
        print(f"\nKernels that take longer in {variant} than in {base_name} (ms):\n")
        for d, key in grew[:top]:
            print(
                f"    {d:+8.2f}  {base.get(key, 0.0):7.2f} -> {ms.get(key, 0.0):7.2f}  [{bucket(key)}] {key[:100]}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="real", choices=["real", "tiny"])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", nargs="*", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--top", type=int, default=12, help="kernels listed per variant, those that grew most"
    )
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29531")
    dist.init_process_group("nccl" if dev == "cuda" else "gloo", rank=0, world_size=1)
    cfg, T = config(a.shape)
    cfg._attn_implementation = "sdpa"
    ids = torch.randint(0, cfg.vocab_size, (a.batch, T), generator=torch.Generator().manual_seed(0))
    ids = ids.to(dev)
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    print(f"# FSDP2 at world size 1 vs bf16 weights + fp32 masters: {a.shape}, B{a.batch}x{T}, "
          f"{name}, torch {torch.__version__}\n")  # fmt: skip
    print("| variant | s/step (median) | min-max | tokens/s | peak GB | last loss |")
    print("|---|---|---|---|---|---|", flush=True)
    profiles = {}
    for variant in a.only:
        model, params = build(variant, cfg, dev)
        opt = torch.optim.AdamW(params, lr=1e-5, fused=dev == "cuda")
        step = step_fn(variant, model, params, opt, ids)
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(a.warmup + a.steps):
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = step()
            if dev == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        ts = sorted(times[a.warmup :])
        med = ts[len(ts) // 2]
        peak = torch.cuda.max_memory_allocated() / 1e9 if dev == "cuda" else 0.0
        print(f"| {variant} | {med:.4f} | {ts[0]:.4f}-{ts[-1]:.4f} | {a.batch * T / med:,.0f} | "
              f"{peak:.1f} | {float(loss):.4f} |", flush=True)  # fmt: skip
        if a.profile:
            profiles[variant] = profile(step, dev)
        del model, params, opt, step
        if dev == "cuda":
            torch.cuda.empty_cache()
    if profiles:
        print_profiles(profiles, a.top)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
