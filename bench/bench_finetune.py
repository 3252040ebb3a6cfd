"""Finetuning step benchmark: the real training path (ablate.core.training.loop.setup with the policy's
recipe, ablate.mask.training.policy.recipe, then loop.step: policy forward, response-only fast head,
optimizer) on the Ministral-3-3B text shape with random weights, causal vs prefix_bidir. Prints a
markdown table.

    PYTHONPATH=src python bench/bench_finetune.py [--only NAME ...] [--json OUT.json] [--smoke]
    PYTHONPATH=src python bench/bench_finetune.py --ddp 2 4 [--only seed-GA16-split] [--json OUT.json]

--ddp N [N ...]: each row (causal) on 1 GPU with the one-GPU default recipe (bf16 weights + fp32
masters: what a `gpu: 1` job runs), then on each N data-parallel processes (torchrun through
ablate.core.execution.parallel.launch, one GPU each) with the recipe the loop picks there (fp32
shards, bf16 the weights' `data_parallel` recipe as resolved: the row's log says which),
the same global batch and data; prints s/step, tokens/s, speed-up and efficiency (speed-up / N)
against the one-GPU default, each N's loss curve's largest relative difference from it, and with
--profile the workers' profile: compute, collectives, collectives not hidden by compute, idle.
--shape 8b: the rows at the Ministral-8B text shape (config/ministral8b.yaml's model: 8.02 B, untied
embeddings), built as a ministral3 model of that shape (the same layers' compute).

The timed steps run as a finetune runs them (no device sync between them; the loss read at the last
only, --ddp: at each step), timed as one interval from a sync before the first to one after the last.

Rows (all T=1024, prompt 1/8-1/2 of each row, no padding, no checkpoint saves, no eval; each row runs
causal and prefix_bidir; weights are the GPU default, bf16 + fp32 masters in the optimizer, unless named):
  B4-adamw                B=4 x grad_accum 1, fused AdamW, attn sdpa (prefix_bidir: dense mask)
  B4-adamw-split          same, attn masks.PREFIX_SDPA (causal flash + non-causal prompt blocks)
  B4-adamw-flex           same, attn flex_attention (BlockMask)
  B4-adafactor-split      B=4, Adafactor (the seed's optimizer), split attention
  seed-GA16-split         B=1 x grad_accum 16, Adafactor, split: the seed's configuration (finetune_params defaults)
  B4-adamw-autocast-split fp32 weights + bf16 autocast (HF's usual mixed precision), split
  B4-adamw-bf16-nomaster  bf16 weights without masters (like docs/findings' baseline; loses small updates)
  B4-adamw-GA4            B=4 x grad_accum 4 (the optimizer step over 4x the tokens)
  B4-adamw-compile        B4-adamw with compile_layers: true (each decoder layer torch.compile'd)
  B4-adamw-GA4-compile    both
  B6-/B8-adamw-compile    B=6 / 8 x grad_accum 1, compile_layers: true (one optimizer step per 6 / 8 rows)
  seed-GA16-split-compile B=1 x grad_accum 16, Adafactor, split, compile_layers: true (16 full rows a step)
  B4-GA4-adafactor-split-compile  the same 16 rows as B=4 x grad_accum 4
  B4-adamw-liger          B4-adamw with Liger's Triton RMSNorm, SwiGLU, RoPE (an experiment: a hook)
--profile N: N more steps of each row under torch.profiler, GPU time by kernel category
(bench/step_profile.py); --policies: which of causal, prefix_bidir each row runs.
MFU = 6 x N_params x tokens/s / 989 TFLOP/s (dense bf16 H100/H200 peak), N = 3.43 B incl. the tied
embedding: the usual model-FLOPs convention. Attention FLOPs are not counted, and the fast head computes
lm_head only on response tokens, so the hardware does somewhat less than 6N per token.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
import time
from pathlib import Path

import torch
from references import policy_loss_sum
from step_profile import StepProfiler
from step_profile import print_table as print_profile

from ablate.core.execution import parallel
from ablate.core.planner.inputs import Reference
from ablate.core.training import loop, params
from ablate.core.training.data import PolicyCollator
from ablate.core.training.pretraining import random_model
from ablate.mask import masks
from ablate.mask.tiny import MINISTRAL3_3B, tiny_ministral3_config
from ablate.mask.training import params as mask_params
from ablate.mask.training.policy import recipe as policy_recipe
from ablate.upstream import hf

#: the MFU's dense bf16 peak: the planner's GPU table, H100 SXM (989 TFLOP/s; H200 the same)
MEASUREMENTS = Path(__file__).resolve().parents[1] / "config" / "gpu_measurements.yaml"
REFERENCE = Reference.load(MEASUREMENTS)
PEAK_TFLOPS = float(REFERENCE.gpus["H100 SXM"]["tflops_bf16"])
#: --shape 8b: config/ministral8b.yaml's model, its text shape from the measurements file
MINISTRAL_8B = "mistralai/Ministral-8B-Instruct-2410"
SHAPE = dict(MINISTRAL3_3B)  # a copy: --smoke updates it
# --smoke: the same code on a tiny shape on CPU, to check the script runs (numbers meaningless)
SMOKE_SHAPE = dict(
    SHAPE,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)
DEVICE = "cuda"
OUT_DIR = Path("/tmp/bench_finetune")  # the run's checkpoint directory: nothing is saved there
T = 1024
LOG_STEPS = 1000  # --ddp: 1, for the loss curve

# name -> (params, reference row whose causal time the "x causal sdpa" column divides by)
SPLIT = masks.PREFIX_SDPA
ROWS = {
    "B4-adamw": (
        dict(batch_size=4, grad_accum=1, optim="adamw_torch_fused", attn_implementation="sdpa"),
        None,
    ),
    "B4-adamw-split": (
        dict(batch_size=4, grad_accum=1, optim="adamw_torch_fused", attn_implementation=SPLIT),
        "B4-adamw",
    ),
    "B4-adamw-flex": (
        dict(
            batch_size=4,
            grad_accum=1,
            optim="adamw_torch_fused",
            attn_implementation="flex_attention",
        ),
        "B4-adamw",
    ),
    "B4-adafactor-split": (
        dict(batch_size=4, grad_accum=1, optim="adafactor", attn_implementation=SPLIT),
        None,
    ),
    "seed-GA16-split": (
        dict(batch_size=1, grad_accum=16, optim="adafactor", attn_implementation=SPLIT),
        None,
    ),
    "B4-adamw-autocast-split": (
        dict(
            batch_size=4,
            grad_accum=1,
            optim="adamw_torch_fused",
            model_dtype="float32",
            attn_implementation=SPLIT,
        ),
        None,
    ),
    "B4-adamw-bf16-nomaster": (
        dict(
            batch_size=4,
            grad_accum=1,
            optim="adamw_torch_fused",
            master_weights=False,
            attn_implementation="sdpa",
        ),
        None,
    ),
    # diagnosis: the split path's per-row non-causal calls have a new shape for every prompt length
    "B4-adamw-split-nocudnn": (
        dict(batch_size=4, grad_accum=1, optim="adamw_torch_fused", attn_implementation=SPLIT),
        "B4-adamw",
    ),
}
NO_CUDNN_ROWS = {"B4-adamw-split-nocudnn"}


def _liger(model) -> None:
    """Liger's Triton RMSNorm, SwiGLU and RoPE on the model instance (its Mistral recipe: Liger
    has no Ministral-3 entry)."""
    from liger_kernel.transformers.monkey_patch import (
        LigerSwiGLUMLP,
        _patch_rms_norm_module,
        _patch_swiglu_module,
    )
    from liger_kernel.transformers.rope import liger_rotary_pos_emb
    from transformers.models.ministral3 import modeling_ministral3

    modeling_ministral3.apply_rotary_pos_emb = liger_rotary_pos_emb
    decoder = model.get_decoder()
    _patch_rms_norm_module(decoder.norm)
    for layer in decoder.layers:
        _patch_swiglu_module(layer.mlp, LigerSwiGLUMLP)
        _patch_rms_norm_module(layer.input_layernorm)
        _patch_rms_norm_module(layer.post_attention_layernorm)


ADAMW_SDPA = dict(optim="adamw_torch_fused", attn_implementation="sdpa")
# rows of the step-speed work (bench/results/mfu_h100.md); HOOKS: experiments applied to the
# model the training path builds (name -> hook(model)), for what the path might adopt
ROWS.update(
    {
        "B4-adamw-GA4": (dict(batch_size=4, grad_accum=4, **ADAMW_SDPA), "B4-adamw"),
        "B4-adamw-compile": (
            dict(batch_size=4, grad_accum=1, compile_layers=True, **ADAMW_SDPA),
            "B4-adamw",
        ),
        "B4-adamw-liger": (dict(batch_size=4, grad_accum=1, **ADAMW_SDPA), "B4-adamw"),
        "B6-adamw-compile": (
            dict(batch_size=6, grad_accum=1, compile_layers=True, **ADAMW_SDPA),
            "B4-adamw",
        ),
        "B8-adamw-compile": (
            dict(batch_size=8, grad_accum=1, compile_layers=True, **ADAMW_SDPA),
            "B4-adamw",
        ),
        "B4-adamw-GA4-compile": (
            dict(batch_size=4, grad_accum=4, compile_layers=True, **ADAMW_SDPA),
            "B4-adamw",
        ),
    }
)
# 16 full rows per step with Adafactor, compiled (config/ministral3b.yaml's recipe at full rows):
# one row per micro-batch, or four (the same global batch; on N GPUs: 16 / N and 4 / N of them)
ADAFACTOR_SPLIT = dict(optim="adafactor", attn_implementation=SPLIT, compile_layers=True)
ROWS.update(
    {
        "seed-GA16-split-compile": (dict(batch_size=1, grad_accum=16, **ADAFACTOR_SPLIT), None),
        "B4-GA4-adafactor-split-compile": (
            dict(batch_size=4, grad_accum=4, **ADAFACTOR_SPLIT),
            "seed-GA16-split-compile",
        ),
    }
)
HOOKS = {"B4-adamw-liger": _liger}
#: --profile: profile this many steps after the warm-up of every row (bench/step_profile.py)
PROFILE_STEPS = 0


def weights_label(p: mask_params.MaskParams, recipe: str | None = None) -> str:
    """The row's weights: the one-GPU recipe, or the loop's recipe of N processes."""
    if recipe == "sharded_weights":  # FSDP2 casts its fp32 shards, no autocast
        return "fp32 shards, bf16 compute" if params.bf16_enabled(p.bf16) else "fp32 shards"
    if recipe == "sharded_masters":
        return (
            "bf16 + fp32 masters, sharded"
            if params.bf16_enabled(p.bf16)
            else "fp32 + fp32 masters, sharded"
        )
    dtype = params.model_dtype(p)
    if dtype == torch.float32:
        return "fp32 + bf16 autocast" if params.bf16_enabled(p.bf16) else "fp32"
    return "bf16 + fp32 master" if params.master_weights_enabled(p) else "bf16 only"


def make_examples(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    ex = []
    for _ in range(n):
        ids = torch.randint(1000, SHAPE["vocab_size"], (T,), generator=g).tolist()
        prompt = int(torch.randint(T // 8, T // 2 + 1, (1,), generator=g))
        ex.append({"input_ids": ids, "prompt_length": prompt})
    return ex


def bench_trainer(
    model, data, policy: str, p: mask_params.MaskParams, label: str, recipe=None
) -> loop.Trainer:
    """The pipeline's trainer (loop.setup with the policy's recipe, as ablate.mask.training.entries
    builds it) as every bench row builds it: the rows' data, no evaluation set, no checkpoints
    (``save_steps`` 0); ``recipe``: the policy's recipe with a row's change (e.g. its head loss)."""
    p = dataclasses.replace(p, save_steps=0)
    recipe = dataclasses.replace(recipe, params=p) if recipe else policy_recipe(policy, p, 11)
    return loop.setup(
        loop.Spec(
            OUT_DIR,
            label,
            pad_token_id=11,
            recipe=recipe,
        ),
        model=model,
        train_dataset=data,
        eval_dataset=None,
    )


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def train_steps(
    trainer: loop.Trainer, n: int, *, log_every: int = 1, sync_each: bool = True
) -> tuple[list[float], list[dict]]:
    """``n`` optimizer steps of ``run`` as loop.train takes them (loop.step on the step's
    examples, loop.step_examples), each timed from its start to its end (``sync_each``: to a
    device sync after it; else the host's time, as loop.train's throughput counts it). At step
    1, every ``log_every`` steps and the last, the loop's log entry (loop.log_train: the mean
    step loss since the last entry; the non-pad tokens into ``trainer.state``) with
    ``tokens_seen``, outside the time. Returns (each step's seconds, the entries)."""
    times, logs = [], []
    for i in range(n):
        t0 = time.perf_counter()
        grad_norm = loop.step(trainer, loop.step_examples(trainer, trainer.state.step))
        if sync_each:
            sync()
        times.append(time.perf_counter() - t0)
        s = trainer.state.step
        if s == 1 or s % log_every == 0 or i == n - 1:
            logs.append(
                {**loop.log_train(trainer, grad_norm), "tokens_seen": trainer.state.tokens_seen}
            )
    return times, logs


def build_model(dtype: torch.dtype, attn: str):
    """The row's model: random weights of SHAPE (built in fp32, cast), running ``attn``; a row
    must time the backend it names (a model built on another ran sdpa under a flex row's name)."""
    config = tiny_ministral3_config(**SHAPE)
    model = random_model(config, seed=0, device=DEVICE, attn_implementation=attn).to(dtype)
    if hf.attn_implementation(model.config) != attn:
        raise RuntimeError(f"asked for {attn}, built {hf.attn_implementation(model.config)}")
    model.config.use_cache = False
    return model


def run_row(
    name: str, policy: str, overrides: dict, warmup: int, timed: int, data_seed: int, passes: int
) -> dict:
    """Train ``passes`` times on the same data (fresh model and optimizer each time) and report the last.

    Real SFT data has many distinct prompt lengths; shape-keyed caches (cuDNN attention plans,
    allocator blocks) fill once per length over a long run. A second pass over the same rows
    measures that steady state; the first pass's time is reported too (``first_pass_s_per_step``).
    """
    first = None
    for _ in range(passes):
        r = _run_once(name, policy, overrides, warmup, timed, data_seed)
        if first is None:
            first = r["s_per_step"]
    r["first_pass_s_per_step"] = first
    r["passes"] = passes
    return r


def _run_once(
    name: str, policy: str, overrides: dict, warmup: int, timed: int, data_seed: int
) -> dict:
    p = mask_params.resolve_params(
        {
            **overrides,
            "max_steps": warmup + timed + PROFILE_STEPS,
            "eval_size": 0,
            "no_learning_steps": 0,
            "plateau_patience": 0,
            "warmup_ratio": 0.0,
            "max_seq_len": T,
        },
        "finetune",
    )
    model = build_model(params.model_dtype(p), p.attn_implementation)
    if name in HOOKS:
        HOOKS[name](model)
    n_params = sum(t.numel() for t in model.parameters())
    data = make_examples(
        (warmup + timed + PROFILE_STEPS) * p.batch_size * p.grad_accum, seed=data_seed
    )
    trainer = bench_trainer(model, data, policy, p, f"{name} {policy}")
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    _, warm_logs = train_steps(trainer, warmup, log_every=LOG_STEPS)
    sync()
    t0 = time.perf_counter()
    times, logs = train_steps(trainer, timed, log_every=LOG_STEPS, sync_each=False)
    sync()
    window_s = time.perf_counter() - t0
    # profiled steps follow the timed ones, so the profiler does not slow what is timed; no sync
    # between them, and their loss read at the last only
    prof = StepProfiler(PROFILE_STEPS) if PROFILE_STEPS else None
    if prof is not None:
        with prof:
            train_steps(trainer, PROFILE_STEPS, log_every=PROFILE_STEPS + 1, sync_each=False)
    s_step = window_s / timed
    tokens_step = p.batch_size * p.grad_accum * T
    tok_s = tokens_step / s_step
    out = dict(
        row=name,
        policy=policy,
        attn=p.attn_implementation,
        optim=p.optim,
        weights=weights_label(p, trainer.recipe),
        batch=f"{p.batch_size}x{p.grad_accum}x{T}",
        s_per_step=s_step,
        s_per_step_min=min(times),  # the host's time of a step (no sync between them)
        tokens_per_s=tok_s,  # every process's together
        mfu=6 * n_params * tok_s / (PEAK_TFLOPS * 1e12 * parallel.world_size()),  # per GPU
        peak_gb=torch.cuda.max_memory_allocated() / 1e9 if DEVICE == "cuda" else float("nan"),
        # the allocator freed its cache and retried (a device sync): memory pressure, not compute
        alloc_retries=torch.cuda.memory_stats().get("num_alloc_retries") if DEVICE == "cuda" else 0,
        n_params=n_params,
        timed_steps=len(times),
        losses=[e["loss"] for e in warm_logs + logs],  # the mean step loss of each log
        world_size=parallel.world_size(),
        recipe=trainer.recipe,
    )
    if prof is not None:
        out["profile"] = prof.table()
        print_profile(f"{name} {policy}", out["profile"])
    del trainer, model, data
    gc.collect()
    torch.cuda.empty_cache()
    return out


def check_flex_matches_sdpa() -> float:
    """Relative difference of the prefix_bidir loss, flex vs sdpa, same weights and batch (the flex path
    must be proven on the GPU: a naive BlockMask was 58 % off there)."""
    model = build_model(torch.bfloat16, "sdpa")
    batch = PolicyCollator(11)([make_examples(2, seed=2)[i] for i in range(2)])
    batch = {k: v.to(DEVICE) for k, v in batch.items()}
    with torch.no_grad():
        a, n = policy_loss_sum(model, batch, "prefix_bidir")
        model.set_attn_implementation("flex_attention")
        b, _ = policy_loss_sum(model, batch, "prefix_bidir")
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return float((a - b).abs() / a.abs())


def use_smoke_shape() -> None:
    global DEVICE, T
    DEVICE, T = "cpu", 128
    SHAPE.update(SMOKE_SHAPE)


def use_shape(shape: str) -> None:
    """The rows' model: ``3b`` (default), ``8b`` or ``smoke`` (tiny, CPU)."""
    if shape == "smoke":
        use_smoke_shape()
    elif shape == "8b":
        text = dict(REFERENCE.models[MINISTRAL_8B]["text_config"])
        SHAPE.update({k: text[k] for k in SHAPE})  # the keys the 3.4 B shape sets


def ddp_worker(name, overrides, warmup, timed, shape, profile, out) -> None:
    """One process of a --ddp run (started by ablate.core.execution.parallel.launch); rank 0 writes
    the row (its profile with --profile: rank 0's GPU)."""
    global LOG_STEPS, PROFILE_STEPS
    LOG_STEPS, PROFILE_STEPS = 1, profile if DEVICE == "cuda" else 0
    use_shape(shape)
    if DEVICE == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    try:
        r = _run_once(name, "causal", overrides, warmup, timed, data_seed=100)
    except torch.OutOfMemoryError as exc:  # a shape that does not fit N GPUs: a row that says so
        r = {"row": name, "world_size": parallel.world_size(), "oom": str(exc)[:200]}
    if parallel.rank() == 0:
        Path(out).write_text(json.dumps(r))


def launch_row(worker: str, kwargs: dict, n: int) -> dict:
    """``worker`` (``module:function`` of bench/, writing its row to ``kwargs["out"]``) on ``n``
    processes (torchrun), each on its own GPU; ``n`` = 1 on the first device alone (as the GPU
    pool gives a one-GPU job)."""
    bench_dir = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [bench_dir, os.environ.get("PYTHONPATH")])
    )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if n == 1 and DEVICE == "cuda":
        os.environ["CUDA_VISIBLE_DEVICES"] = (visible or "0").split(",")[0]
    try:
        parallel.launch(worker, kwargs, n, os.cpu_count() or n)
    finally:
        if visible is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible
    return json.loads(Path(kwargs["out"]).read_text())


def scaling(rows: list[dict]) -> list[dict]:
    """Each row's speed-up and efficiency against the 1-process row of its name (the one-GPU
    default recipe), and the largest relative difference of its loss curve from that row's."""
    for r in rows:
        base = next(b for b in rows if b["row"] == r["row"] and b["world_size"] == 1)
        if "oom" in r or "oom" in base:
            continue
        r["speedup"] = base["s_per_step"] / r["s_per_step"]
        r["efficiency"] = r["speedup"] / r["world_size"]
        r["loss_rel_diff"] = max(
            abs(a - b) / abs(a) for a, b in zip(base["losses"], r["losses"], strict=True)
        )
    return rows


def print_scaling(rows: list[dict]) -> None:
    print(
        "\n| row | GPUs | recipe | B x GA x T (global) | s/step | tokens/s | MFU | speed-up "
        "| efficiency | loss vs 1 GPU (max rel) | peak GB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "oom" in r:
            print(f"| {r['row']} | {r['world_size']} | out of memory | | | | | | | | |")
            continue
        recipe = r["weights"]
        print(
            f"| {r['row']} | {r['world_size']} | {recipe} | {r['batch']} | {r['s_per_step']:.3f} | "
            f"{r['tokens_per_s'] / 1e3:.1f}k | {r['mfu']:.3f} | {fmt(r.get('speedup'), '.2f')} | "
            f"{fmt(r.get('efficiency'), '.3f')} | {fmt(r.get('loss_rel_diff'), '.1e')} | "
            f"{fmt(r['peak_gb'], '.1f')} |"
        )
    for r in rows:
        if r.get("profile"):
            print_profile(f"{r['row']}, {r['world_size']} GPU(s), rank 0", r["profile"])


def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def run_ddp(
    names: list[str], counts: list[int], warmup: int, timed: int, shape: str, profile: int
) -> list[dict]:
    """Each row on 1 process with the one-GPU default recipe, then on each of ``counts``
    processes with the loop's data-parallel recipe: the same global batch and data."""
    rows = []
    for name in names:
        for n in [1, *counts]:
            out = f"/tmp/bench_finetune_ddp_{name}_{n}.json"
            kwargs = dict(
                name=name,
                overrides=ROWS[name][0],
                warmup=warmup,
                timed=timed,
                shape=shape,
                profile=profile,
                out=out,
            )
            r = launch_row("bench_finetune:ddp_worker", kwargs, n)
            rows.append(r)
            print(json.dumps(r), flush=True)
    return scaling(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=list(ROWS), help="rows to run (default: all)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--timed", type=int, default=10)
    ap.add_argument(
        "--passes", type=int, default=2, help="passes over the same rows; the last is reported"
    )
    ap.add_argument("--json", help="also write the rows as JSON")
    ap.add_argument(
        "--smoke", action="store_true", help="tiny shape on CPU: checks the script, not speed"
    )
    ap.add_argument(
        "--ddp", type=int, nargs="+", default=[], help="N ...: 1 GPU vs N processes (above)"
    )
    ap.add_argument("--shape", choices=["3b", "8b"], default="3b", help="the rows' model shape")
    ap.add_argument(
        "--policies", nargs="+", default=["causal", "prefix_bidir"], help="policies of each row"
    )
    ap.add_argument(
        "--profile", type=int, default=0, help="N: profile N steps of each row (step_profile.py)"
    )
    args = ap.parse_args(argv)
    global PROFILE_STEPS
    PROFILE_STEPS = args.profile
    if args.smoke:
        use_smoke_shape()
        args.warmup, args.timed = 1, 2
        # flex_attention has no CPU backward
        args.only = [r for r in (args.only or ROWS) if "flex" not in r]
    elif not torch.cuda.is_available():
        print("bench_finetune needs a CUDA GPU (or --smoke)", file=sys.stderr)
        return 2
    else:
        use_shape(args.shape)
        torch.backends.cuda.matmul.allow_tf32 = True
    device_name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu (smoke)"
    print(
        f"# {device_name}, torch {torch.__version__}, "
        f"transformers {__import__('transformers').__version__}",
        flush=True,
    )
    if DEVICE == "cuda":
        order = getattr(torch._C, "_get_sdp_priority_order", lambda: None)()
        print(
            f"# sdpa priority order {order}; cudnn sdp enabled {torch.backends.cuda.cudnn_sdp_enabled()}, "
            f"flash {torch.backends.cuda.flash_sdp_enabled()}",
            flush=True,
        )
    if args.ddp:
        names = args.only or ["seed-GA16-split"]
        shape = "smoke" if args.smoke else args.shape
        rows = run_ddp(names, args.ddp, args.warmup, args.timed, shape, args.profile)
        print_scaling(rows)
        if args.json:
            meta = {"device": device_name, "command": " ".join(sys.argv), "rows": rows}
            Path(args.json).write_text(json.dumps(meta, indent=1))
        return 0
    results = []
    flex_diff = None
    for name in args.only or list(ROWS):
        over, ref = ROWS[name]
        warmup, timed = args.warmup, args.timed
        if over["grad_accum"] > 1:  # one step = grad_accum micro-batches
            warmup, timed = 1, max(3, args.timed // 3)
        if over.get("attn_implementation") == "flex_attention" and flex_diff is None:
            flex_diff = check_flex_matches_sdpa()
            print(
                f"flex vs sdpa prefix_bidir loss, relative difference: {flex_diff:.2e}", flush=True
            )
        pair = []
        cudnn_before = torch.backends.cuda.cudnn_sdp_enabled()
        if name in NO_CUDNN_ROWS:
            torch.backends.cuda.enable_cudnn_sdp(False)
        for policy in args.policies:
            t0 = time.time()
            try:
                r = run_row(
                    name,
                    policy,
                    over,
                    warmup,
                    timed,
                    data_seed=100 + len(results),
                    passes=args.passes,
                )
            except torch.OutOfMemoryError as exc:  # report the row, keep the rest
                print(f"{name} {policy}: out of memory ({str(exc)[:120]})", flush=True)
                gc.collect()
                torch.cuda.empty_cache()
                continue
            r["wall_s"] = time.time() - t0
            pair.append(r)
            print(json.dumps(r), flush=True)
        torch.backends.cuda.enable_cudnn_sdp(cudnn_before)
        if len(pair) == 2:
            pair[1]["ratio"] = pair[1]["s_per_step"] / pair[0]["s_per_step"]
            pair[0]["ratio"] = 1.0
        ref_causal = [
            r for r in results + pair if r["row"] == (ref or name) and r["policy"] == "causal"
        ]
        for r in pair:
            if ref_causal:
                r["ratio_ref"] = r["s_per_step"] / ref_causal[0]["s_per_step"]
        results += pair
    print(
        "\n| row | policy | attn | optimizer | weights | B x GA x T | s/step | first pass s/step | tokens/s | MFU "
        "| peak GB | x causal (same row) | x causal sdpa |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{r['ratio']:.3f}" if "ratio" in r else "-"
        ratio_ref = f"{r['ratio_ref']:.3f}" if "ratio_ref" in r else "-"
        print(
            f"| {r['row']} | {r['policy']} | {r['attn']} | {r['optim']} | {r['weights']} | "
            f"{r['batch']} | {r['s_per_step']:.3f} | {r['first_pass_s_per_step']:.3f} | "
            f"{r['tokens_per_s'] / 1e3:.1f}k | {r['mfu']:.3f} | {r['peak_gb']:.1f} | "
            f"{ratio} | {ratio_ref} |"
        )
    if flex_diff is not None:
        print(f"\nflex vs sdpa prefix_bidir loss relative difference: {flex_diff:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"rows": results, "flex_vs_sdpa_rel_diff": flex_diff, "device": device_name},
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
