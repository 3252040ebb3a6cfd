"""GPU benchmark of the mask policies: one training step per policy and attention backend.

Random-init Ministral-3-3B text shape (26 layers, hidden 3072, 32/8 heads, head_dim 128, MLP
9216, vocab 131072, tied), bf16 weights, fused AdamW, B x T tokens per step with the prompt
1/8-1/2 of each row (response-only labels). Prints a markdown table: s/step, tokens/s, MFU
(6 x params x tokens over 989 TF/s, the dense bf16 peak the baselines used), ratio vs causal,
peak GB. Then checks on the same GPU that the flex and split-sdpa paths give the logits of the
sdpa reference (bf16 and fp32, padded batches), and runs the CPU test suite's perturbation
audit (tests/mask/test_masks.py) on the GPU kernels.

    python bench/bench_masks.py --out $OUT/bench_masks.json      # on an H100/H200
    python bench/bench_masks.py --smoke                            # tiny shape, CPU, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "mask"))  # test_masks: the perturbation audit

from bench_finetune import PEAK_TFLOPS  # noqa: E402  (the planner's GPU table)

from ablate.core.training.pretraining import random_model  # noqa: E402
from ablate.mask import masks, split_sdpa  # noqa: E402
from ablate.mask.tiny import MINISTRAL3_3B, tiny_ministral3_config  # noqa: E402

SHAPE_3B = MINISTRAL3_3B
SHAPE_SMOKE = dict(
    vocab_size=1024,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    tie_word_embeddings=True,
)
FLEX = "flex_attention"
#: (label, policy, attn_implementation, extra policy_forward_kwargs)
VARIANTS = [
    ("causal, sdpa (flash)", "causal", "sdpa", {}),
    ("prefill_bidir, sdpa is_causal=False", "prefill_bidir", "sdpa", {}),
    ("prefix_bidir, sdpa dense mask", "prefix_bidir", "sdpa", {}),
    ("prefix_bidir, flex BlockMask", "prefix_bidir", FLEX, {}),
    ("prefix_bidir, split sdpa (masks.PREFIX_SDPA)", "prefix_bidir", masks.PREFIX_SDPA, {}),
    ("causal, flex BlockMask", "causal", FLEX, {}),
]


# ---------------------------------------------------------------- split-attention experiments
# Alternatives to split_sdpa.prefix_split_sdpa_attention, swapped in under the PREFIX_SDPA name with
# --experiments (the attention interface is looked up by name at every forward).


def _causal_pass(module, query, key, value, attention_mask, dropout, scaling, kw):
    """What both experiments share. Without prompt lengths or when decoding: (None, plain sdpa's
    (output, weights), to return as is); else (lengths, the full causal pass's output, which the
    prompt blocks then overwrite)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward as sdpa

    lengths = kw.pop(split_sdpa.PROMPT_LENGTHS_KWARG, None)
    if lengths is None or query.shape[2] == 1:
        return None, sdpa(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kw
        )
    kw.pop("is_causal", None)
    out, _ = sdpa(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=dropout,
        scaling=scaling,
        is_causal=True,
        **kw,
    )
    return lengths, out


def _split_rowslice(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kw):
    """First version: per-row slices of the full tensors, torch.cat + torch.stack."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward as sdpa

    lengths, out = _causal_pass(module, query, key, value, attention_mask, dropout, scaling, kw)
    if lengths is None:
        return out
    rows = []
    for b, p in enumerate(lengths):
        block, _ = sdpa(
            module,
            query[b : b + 1, :, :p],
            key[b : b + 1, :, :p],
            value[b : b + 1, :, :p],
            None,
            dropout=dropout,
            scaling=scaling,
            is_causal=False,
            **kw,
        )
        rows.append(torch.cat([block[0], out[b, p:]], dim=0))
    return torch.stack(rows), None


def _split_packed_gather(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kw
):
    """Second version: prompt tokens gathered into a packed copy (reshape of the transposed
    (B, H, T, D) inputs, then indexing), per-row sdpa on its slices, one index_copy back."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward as sdpa

    lengths, out = _causal_pass(module, query, key, value, attention_mask, dropout, scaling, kw)
    if lengths is None:
        return out
    batch, _, width, _ = query.shape
    idx = split_sdpa.prompt_token_index(tuple(lengths), width, query.device)

    def packed(x):
        return x.transpose(1, 2).reshape(batch * width, x.shape[1], x.shape[3])[idx]

    q, k, v = packed(query), packed(key), packed(value)
    blocks, start = [], 0
    for p in lengths:
        rows = slice(start, start + p)
        block, _ = sdpa(
            module,
            q[rows].transpose(0, 1)[None],
            k[rows].transpose(0, 1)[None],
            v[rows].transpose(0, 1)[None],
            None,
            dropout=dropout,
            scaling=scaling,
            is_causal=False,
            **kw,
        )
        blocks.append(block[0])
        start += p
    flat = out.reshape(batch * width, *out.shape[2:])
    return flat.index_copy(0, idx, torch.cat(blocks)).view(out.shape), None


EXPERIMENTS = {
    "prefix_bidir, split v1 (per-row slices)": _split_rowslice,
    "prefix_bidir, split v2 (packed gather copies)": _split_packed_gather,
}


class use_split:
    """Temporarily serve PREFIX_SDPA with another attention function (None: the library's)."""

    def __init__(self, fn):
        self.fn = fn

    def __enter__(self):
        from transformers import AttentionInterface

        if self.fn is not None:
            AttentionInterface.register(masks.PREFIX_SDPA, self.fn)

    def __exit__(self, *exc):
        from transformers import AttentionInterface

        AttentionInterface.register(masks.PREFIX_SDPA, split_sdpa.prefix_split_sdpa_attention)


def log(msg: str) -> None:
    print(f"[bench_masks {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_model(shape: dict, dtype, device):
    return random_model(tiny_ministral3_config(**shape), seed=0, device=device).to(dtype)


def train_batch(batch: int, seq: int, vocab: int, device, seed: int = 0):
    """Full rows (no padding), prompt 1/8-1/2 of each row, labels on the response only."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, seq), generator=g)
    lengths = torch.randint(seq // 8, seq // 2 + 1, (batch,), generator=g).tolist()
    labels = ids.clone()
    for b, p in enumerate(lengths):
        labels[b, :p] = -100
    mask = torch.ones_like(ids)
    return ids.to(device), mask.to(device), labels.to(device), lengths


def train_step(model, opt, batch, policy: str, extra: dict | None = None) -> None:
    ids, mask, labels, lengths = batch
    kw = masks.policy_forward_kwargs(model, ids, mask, lengths, policy, **(extra or {}))
    model(**kw, labels=labels).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_variant(model, opt, batch, policy, impl, extra, steps, warmup, device, split_fn=None):
    with use_split(split_fn):
        return _time_variant(model, opt, batch, policy, impl, extra, steps, warmup, device)


def _time_variant(model, opt, batch, policy, impl, extra, steps, warmup, device) -> dict:
    model.set_attn_implementation(impl)
    model.train()
    cuda = torch.device(device).type == "cuda"
    t0 = time.time()
    for _ in range(warmup):
        train_step(model, opt, batch, policy, extra)
    sync(device)
    warm_s = time.time() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            train_step(model, opt, batch, policy, extra)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t = time.perf_counter()
            train_step(model, opt, batch, policy, extra)
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")
    return dict(times=times, warmup_s=warm_s, peak_gb=peak)


def run_timing(args, model, device) -> list[dict]:
    n_params = sum(p.numel() for p in model.parameters())
    tokens = args.batch * args.seq
    batch = train_batch(args.batch, args.seq, model.config.vocab_size, device)
    log(
        f"{n_params / 1e9:.3f} B params; batch {args.batch} x {args.seq}; prompt lengths {batch[3]}"
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=torch.device(device).type == "cuda")
    variants = [(*v, None) for v in VARIANTS if not (args.skip_flex and v[2] == FLEX)]
    if args.experiments:
        variants += [
            (label, "prefix_bidir", masks.PREFIX_SDPA, {}, fn) for label, fn in EXPERIMENTS.items()
        ]
    rows = {
        v[0]: dict(label=v[0], policy=v[1], impl=v[2], times=[], rounds=[], peak_gb=0.0)
        for v in variants
    }
    # Rounds in alternating order, so a drift of clocks or temperature does not favour one variant.
    for r in range(args.rounds):
        for label, policy, impl, extra, fn in variants if r % 2 == 0 else variants[::-1]:
            try:
                res = time_variant(
                    model, opt, batch, policy, impl, extra, args.steps, args.warmup, device, fn
                )
            except Exception as exc:  # an experiment may not run on this torch; say so
                if fn is None:
                    raise
                log(f"{label} failed: {type(exc).__name__}: {exc}")
                rows.pop(label, None)
                variants = [v for v in variants if v[0] != label]
                continue
            row = rows[label]
            row["times"] += res["times"]
            row["rounds"].append(statistics.median(res["times"]))
            row["peak_gb"] = max(row["peak_gb"], res["peak_gb"])
            log(
                f"round {r + 1} {label}: median {row['rounds'][-1]:.4f} s/step "
                f"(warmup {res['warmup_s']:.1f}s, peak {res['peak_gb']:.1f} GB)"
            )
    causal = statistics.median(rows[VARIANTS[0][0]]["times"])
    out = []
    for row in rows.values():
        if not row["times"]:
            continue
        s = statistics.median(row["times"])
        out.append(
            dict(
                row,
                s_per_step=s,
                tokens_per_s=tokens / s,
                mfu=6 * n_params * tokens / s / (PEAK_TFLOPS * 1e12),
                ratio=s / causal,
                spread=(max(row["rounds"]) - min(row["rounds"])) / s,
            )
        )
    if args.profile and torch.device(device).type == "cuda":
        for label, policy, impl, extra in [VARIANTS[0], VARIANTS[5]]:
            out_row = next(r for r in out if r["label"] == label)
            out_row["profile"] = profile_step(model, opt, batch, policy, impl, extra)
            print(f"\n### profile: {label}\n```\n{out_row['profile']}\n```", flush=True)
        out[0]["flash_only_split"] = flash_only_check(model, opt, batch)
        log(
            f"split backend (fwd+bwd) under a flash-only sdpa_kernel context: {out[0]['flash_only_split']}"
        )
    del opt
    return out


def profile_step(model, opt, batch, policy, impl, extra) -> str:
    from torch.profiler import ProfilerActivity, profile

    model.set_attn_implementation(impl)
    train_step(model, opt, batch, policy, extra)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(2):
            train_step(model, opt, batch, policy, extra)
        torch.cuda.synchronize()
    return prof.key_averages().table(
        sort_by="cuda_time_total", row_limit=14, max_name_column_width=60
    )


def flash_only_check(model, opt, batch) -> str:
    """Does every sdpa call of the split backend run on the flash kernel (fwd + bwd)?"""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model.set_attn_implementation(masks.PREFIX_SDPA)
    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            train_step(model, opt, batch, "prefix_bidir", {})
        torch.cuda.synchronize()
        return "ok"
    except RuntimeError as exc:
        return f"not flash: {str(exc).splitlines()[0][:200]}"


def table(rows: list[dict]) -> str:
    lines = [
        "| variant | s/step | tokens/s | MFU vs 989 TF/s | x causal | round spread | peak GB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['s_per_step']:.4f} | {r['tokens_per_s'] / 1e3:.1f}k | "
            f"{r['mfu']:.3f} | {r['ratio']:.3f} | {100 * r['spread']:.1f}% | {r['peak_gb']:.1f} |"
        )
    return "\n".join(lines)


def padded_batch(lengths: list[int], side: str, vocab: int, device, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, n in enumerate(lengths):
        cols = slice(0, n) if side == "right" else slice(width - n, width)
        ids[b, cols] = torch.randint(3, vocab, (n,), generator=g)
        mask[b, cols] = 1
    prompts = [max(1, n // 8 + (n // 3) * (b % 2)) for b, n in enumerate(lengths)]
    return ids.to(device), mask.to(device), prompts


@torch.no_grad()
def logits_check(model, args, device, dtype_label: str, ref_fp32: dict | None) -> tuple[list, dict]:
    """flex and split-sdpa logits vs the sdpa path, per policy and padding side."""
    model.eval()
    lengths = [args.seq, args.seq * 7 // 8 + 3, args.seq // 2 + 17, args.seq // 4 + 3]
    impls = [i for i in ("sdpa", FLEX, masks.PREFIX_SDPA) if not (args.skip_flex and i == FLEX)]
    rows, keep = [], {}
    for side in ("right", "left"):
        ids, mask, prompts = padded_batch(lengths, side, model.config.vocab_size, device)
        real = mask.bool()
        for policy in masks.POLICIES:
            out = {}
            for impl in impls:
                model.set_attn_implementation(impl)
                kw = masks.policy_forward_kwargs(model, ids, mask, prompts, policy)
                out[impl] = model(**kw).logits[real].float()
            if args.experiments and policy == "prefix_bidir":
                model.set_attn_implementation(masks.PREFIX_SDPA)
                kw = masks.policy_forward_kwargs(model, ids, mask, prompts, policy)
                for name, fn in EXPERIMENTS.items():
                    try:
                        with use_split(fn):
                            out[name] = model(**kw).logits[real].float()
                    except Exception as exc:
                        log(f"logits {dtype_label} {name} failed: {type(exc).__name__}: {exc}")
            ref = out["sdpa"]
            keep[(side, policy)] = ref if dtype_label == "fp32" else None
            for impl in out:
                d = out[impl] - ref
                row = dict(
                    dtype=dtype_label,
                    side=side,
                    policy=policy,
                    impl=impl,
                    max_abs=d.abs().max().item(),
                    rel=(d.norm() / ref.norm()).item(),
                )
                if ref_fp32 is not None:  # distance to the fp32 sdpa logits: bf16's own noise
                    f = ref_fp32[(side, policy)]
                    row["rel_vs_fp32"] = ((out[impl] - f).norm() / f.norm()).item()
                rows.append(row)
                log(
                    f"logits {dtype_label} {side} {policy} {impl}: max|d| {row['max_abs']:.2e} "
                    f"rel {row['rel']:.2e}"
                )
            del out
    return rows, keep


def gpu_audit(device, dtype, skip_flex: bool) -> list[dict]:
    """tests/mask/test_masks.py's perturbation audit, run on the GPU's kernels (tiny model)."""
    import test_masks as tm

    model = tm.new_model("ministral3", dtype=dtype).to(device)
    impls = ["eager", "sdpa", masks.PREFIX_SDPA] + ([] if skip_flex else [FLEX])
    out = []
    for policy in masks.POLICIES:
        for side in tm.SIDES:
            ref = None
            for impl in impls:
                res = tm.audit(tm.with_impl(model, impl), policy, side)
                if impl == "eager":
                    ref = res
                vs_eager = max(
                    (torch.tensor(a) - torch.tensor(e)).abs().max().item()
                    for a, e in zip(res["logits"], ref["logits"])
                )
                out.append(
                    dict(
                        policy=policy,
                        side=side,
                        impl=impl,
                        dtype=str(dtype),
                        mismatches=len(res["mismatches"]),
                        first=res["mismatches"][:2],
                        pad_diff=res["pad_diff"],
                        vs_eager=vs_eager,
                        dep_min=res["dep_min"],
                        indep_max=res["indep_max"],
                        cross_row=res["cross_row"],
                    )
                )
                log(
                    f"audit {dtype} {policy}/{side}/{impl}: {len(res['mismatches'])} mismatches, "
                    f"pad {res['pad_diff']:.1e}, vs eager {vs_eager:.1e}, "
                    f"dep_min {res['dep_min']:.1e}, indep_max {res['indep_max']:.1e}"
                )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", help="write all numbers as JSON here")
    p.add_argument("--smoke", action="store_true", help="tiny shape on CPU (checks the script)")
    p.add_argument("--skip-flex", action="store_true")
    p.add_argument("--skip-checks", action="store_true")
    p.add_argument(
        "--experiments",
        action="store_true",
        help="also time the alternative split implementations (EXPERIMENTS)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="CUDA kernel profile of causal and split steps; flash-only check",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.batch, args.seq, args.steps, args.warmup, args.rounds = 2, 64, 2, 1, 1
        args.skip_flex = True  # flex has no backward on CPU
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    shape = SHAPE_SMOKE if args.smoke else SHAPE_3B
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 checks must be fp32
    torch.backends.cudnn.allow_tf32 = False
    import transformers

    result = dict(
        device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
        torch=torch.__version__,
        transformers=transformers.__version__,
        args=vars(args),
        shape=shape,
    )
    log(
        f"device {result['device']}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}"
    )

    def save():
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")

    dtype = torch.float32 if args.smoke else torch.bfloat16
    model = build_model(shape, dtype, device)
    rows = run_timing(args, model, device)
    result["timing"] = [{k: v for k, v in r.items()} for r in rows]
    save()
    print(
        f"\n## Training step: {result['device']}, B={args.batch} x T={args.seq}, "
        f"{args.steps * args.rounds} timed steps per variant\n"
    )
    print(table(rows), flush=True)
    if args.skip_checks:
        return 0
    model.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.empty_cache()
    # fp32 first: its sdpa logits are the yardstick for bf16 noise.
    model.float()
    fp32_rows, ref = logits_check(model, args, device, "fp32", None)
    model.to(torch.bfloat16)
    bf16_rows, _ = logits_check(model, args, device, "bf16", ref)
    result["logits"] = fp32_rows + bf16_rows
    save()
    del model, ref
    if device == "cuda":
        torch.cuda.empty_cache()
    result["audit"] = gpu_audit(device, torch.float32, args.skip_flex)
    result["audit"] += gpu_audit(device, torch.bfloat16, args.skip_flex)
    save()

    print("\n## Logits vs the sdpa path (real positions; rel = |a-b|/|b|)\n")
    print("| dtype | padding | policy | backend | max abs | rel | rel vs fp32 sdpa |")
    print("|---|---|---|---|---|---|---|")
    for r in result["logits"]:
        if r["impl"] == "sdpa" and r["dtype"] == "fp32":
            continue
        print(
            f"| {r['dtype']} | {r['side']} | {r['policy']} | {r['impl']} | {r['max_abs']:.2e} | "
            f"{r['rel']:.2e} | {r.get('rel_vs_fp32', float('nan')):.2e} |"
        )
    print("\n## Perturbation audit on the GPU (tests/mask/test_masks.py, tiny Ministral-3)\n")
    print(
        "| dtype | backend | mismatches (6 policy x side) | max pad diff | max vs eager | "
        "min dependent |d| | max independent |d| |"
    )
    print("|---|---|---|---|---|---|---|")
    for dt in sorted({a["dtype"] for a in result["audit"]}):
        for impl in dict.fromkeys(a["impl"] for a in result["audit"]):
            sel = [a for a in result["audit"] if a["dtype"] == dt and a["impl"] == impl]
            print(
                f"| {dt} | {impl} | {sum(a['mismatches'] for a in sel)} | "
                f"{max(a['pad_diff'] for a in sel):.1e} | {max(a['vs_eager'] for a in sel):.1e} | "
                f"{min(a['dep_min'] for a in sel):.1e} | {max(a['indep_max'] for a in sel):.1e} |"
            )
    print(f"\n## Training step (repeated)\n\n{table(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
