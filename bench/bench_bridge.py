"""Bridge benchmark (issue 15): the translator's training step, the bridged evaluation, the five
inference baselines and KV-cache sizes, at the real shape (random weights, nothing from the hub).

    PYTHONPATH=src python bench/bench_bridge.py --shape tiny [--out bench/results/bridge_cpu_tiny.json]
    PYTHONPATH=src python bench/bench_bridge.py --shape real --out bench/results/bridge_h200.json
    PYTHONPATH=src torchrun --nproc-per-node 2 bench/bench_bridge.py --shape real --ddp \\
        --out bench/results/bridge_h200x2_ddp.json

Real shape: Mistral-7B-Instruct-v0.3 (source) and Llama-3.1-8B-Instruct (target) as their
config.json shapes in config/gpu_measurements.yaml (`models:`), built with random weights directly
on the GPU in bf16; the translator, batch, KL positions, evaluation batch and new tokens of
config/latentwire.yaml's `bridge.defaults` (the seed's 1a: K=64, depth 8, bottleneck 1024, 16
heads, batch 10 per GPU); the example lengths of `bridge_lengths.gsm8k` in the measurements file
(every row the same length: no padding). `--shape tiny`: two-layer models and the embedded
defaults (K=8), on CPU in seconds, to check the script (numbers meaningless for the GPU grid).

Training-step variants (one GPU each; the pipeline's loss, ablate.bridge.pair.Pair.loss, over
synthetic items of these lengths: answer NLL after BOS + K soft + cue, KL to the text-prompted
target over the first kl_positions answer positions, InfoNCE and prompt-alignment MSE of pooled
vectors):
  seed                 live source forward every step, live teacher, fp32 translator, AdamW
  cached               source states cached (bscale's declared output): no source forward
  cached+fused         + fused AdamW
  cached+fused+bf16    + bf16 autocast of the translator
  ...+teacher_cached   + the teacher cached too (it does not depend on the translator): its last
                       hidden states at the kl_positions answer positions (kl_positions x
                       d_target x 2 bytes per example, in the row; 1.1 GiB for GSM8K train),
                       lm_head + log_softmax applied each step: exact, and 1/30 of the storage
                       of the log-probs themselves (x vocab / d_target)
  ...+gradckpt         + gradient checkpointing of the target (memory for time)
  ...+batch x2 / x4    larger batch per GPU (tokens/s; global batch changes)
  ...+compile          + torch.compile of the translator
  pipeline:seed        the pipeline's own step: ablate.core.training.loop.step on the
                       trainer ablate.bridge.training.recipe.translator_trainer builds (Pair.loss over
                       synthetic items of the same lengths), live source and teacher: end to end, no phases
  pipeline:cached      the same with the source states and teacher rows read from the pair's
                       caches (bscale's; here in memory, bridge_work.FixedStates): the pipeline's
                       recipe, the row the planner's measurement is made from
Phases are timed with a device sync around each, so the phase sum is slightly above the step;
translator_forward is a part of loss_forward_backward (the translator, the target's forward and
backward). Under --ddp the loss's token counts are all-reduced, as in a data-parallel run.
--ddp (under torchrun): the cached+fused+bf16 step on each rank alone, then with the translator in
DistributedDataParallel (frozen models replicated): scaling efficiency = DDP tokens/s / (N x alone).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import torch
import yaml
from bridge_decode import bridged_eval, infer_rows, kv_rows
from bridge_work import (  # noqa: F401  (TINY_LENGTHS: the tests read it from here)
    CPU_FLAG,
    MEASUREMENTS,
    PIPELINE_VARIANTS,
    RESERVE_S,
    TINY_LENGTHS,
    build_lm,
    build_translator,
    n_params,
    pipeline_variant,
    run_variant,
    setup,
    variants,
)

from ablate.bridge import cost
from ablate.bridge import params as bridge_params
from ablate.bridge.translator import ARCH_KEYS


# --- reporting ----------------------------------------------------------------------------------
def machine(device, world: int) -> dict:
    from ablate.core.planner.inputs import load_reference

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        gpu = load_reference(MEASUREMENTS).canonical_gpu(name) or name
    else:
        from ablate.core.outputs.provenance import cpu_info

        model = cpu_info()["cpu_model"] or "cpu"
        name, gpu = f"{model} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)", "cpu"
    return dict(device=name, gpu=gpu, gpus=world, torch=torch.__version__)


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(x):
        return f"{x:.4g}" if isinstance(x, float) else ("-" if x is None else str(x))

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def measurement_rows(s, rows: list[dict], mach: dict, sizes: dict[str, int]) -> list[dict]:
    """Rows for config/gpu_measurements.yaml `measurements:` (the planner's bridge inputs): the
    size of the pair (source + target + translator) and, for the step, its FLOPs per token, so
    the planner can carry the rate over to entries of other lengths and KL settings."""
    total_params = sum(sizes.values())
    flag = f"{CPU_FLAG}; " if mach["gpu"] == "cpu" else ""
    where = f"bench/bench_bridge.py --shape {s.shape} on {mach['gpus']}x {mach['device']}"
    out = []
    train = {r["variant"]: r for r in rows if r["section"] == "train" and "s_per_step" in r}
    # the pipeline's own step with both frozen caches (what ablate.bridge.plan forecasts)
    name = next((k for k in ("pipeline:cached", "cached") if k in train), None)
    if name:
        r = train[name]
        flops = cost.example_flops(
            bridge_params.check(s.p),
            s.n,
            sizes["source"],
            sizes["target"],
            sizes["translator"],
            cached_source=True,
            cached_teacher=name == "pipeline:cached",
        )
        out.append(
            dict(
                kind="train",
                gpu=mach["gpu"],
                params=total_params,
                optim="adamw_torch",
                tokens_per_s=round(r["tokens_per_s"], 1),
                flops_per_token=float(f"{flops / cost.example_tokens(s.p['K'], s.n):.6g}"),
                s_per_step=round(r["s_per_step"], 4),
                peak_memory_gb=r["peak_mem_gb"] and round(r["peak_mem_gb"], 1),
                source=f"{flag}bridge train step '{name}', batch {r['batch_per_gpu']} ({where})",
            )
        )
    ev = [r for r in rows if r["section"] == "eval"]
    inf = [r for r in rows if r["section"] == "infer"]
    for policy, rs, what in (
        (ev and ev[0]["variant"], ev, "bridged evaluation"),
        ("batch1", inf, "five baselines"),
    ):
        if rs:
            tok = sum(r["generated_tokens"] for r in rs)
            sec = sum(r.get("s_per_batch", r.get("latency_s", 0)) for r in rs)
            out.append(
                dict(
                    kind="generate",
                    policy=policy,
                    gpu=mach["gpu"],
                    params=total_params,
                    tokens_per_s=round(tok / sec, 2),
                    source=f"{flag}{what}: {tok} generated tokens in {sec:.3g} s ({where})",
                )
            )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=["tiny", "real"], default="tiny")
    ap.add_argument("--out", help="write the raw rows (JSON) here, e.g. bench/results/x.json")
    ap.add_argument("--ddp", action="store_true", help="under torchrun: 1 vs N GPUs scaling only")
    ap.add_argument("--only", nargs="*", help="variant names (train) to run; default all")
    ap.add_argument("--steps", type=int, help="timed steps per variant (default 5, tiny 2)")
    ap.add_argument("--samples", type=int, default=1, help="inference samples per baseline")
    ap.add_argument("--kv-tokens", type=int, help="prefill length of the KV check (default 2048)")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=200.0,
        help="skip an item that would end after this many seconds (imports come on top: ~15 s)",
    )
    a = ap.parse_args(argv)
    started = time.perf_counter()
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    real = a.shape == "real"
    if real and not torch.cuda.is_available():
        ap.error("--shape real needs a CUDA GPU")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if a.ddp:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    s = setup(a.shape)
    dtype = torch.bfloat16 if real else torch.float32
    t0 = time.perf_counter()
    source = build_lm(s.cfgs["source"], dtype, device)
    target = build_lm(s.cfgs["target"], dtype, device)
    build_s = time.perf_counter() - t0
    models_ = (source, target)
    tr_params = n_params(build_translator(s, source, target, "cpu"))
    mach = machine(device, world)
    log = print if rank == 0 else (lambda *x, **k: None)
    log(
        f"# bench_bridge --shape {a.shape}: {mach['gpus']}x {mach['device']}; source "
        f"{s.names['source']} {n_params(source) / 1e9:.3g} B, target {s.names['target']} "
        f"{n_params(target) / 1e9:.3g} B, translator {tr_params / 1e6:.1f} M (K={s.p['K']}, "
        f"depth {s.p['depth']}, bottleneck {s.p['bottleneck']}); lengths {s.n}; built in "
        f"{build_s:.1f} s",
        flush=True,
    )
    steps = a.steps or (5 if real else 2)
    warmup = 2 if real else 1
    rows: list[dict] = []

    def over_budget(what: str, reserve: float = 0.0) -> bool:
        """Past the budget (less ``reserve``, the time the next item needs): skip, say so."""
        if time.perf_counter() - started > a.budget_s - reserve:
            rows.append(dict(section="skipped", variant=what, note=f"--budget-s {a.budget_s:g}"))
            return True
        return False

    def train_variant(v: dict, reserve: float = 0.0) -> None:
        if over_budget(f"train {v['name']}", reserve):
            return
        try:
            rows.append(run_variant(s, v, models_, device, steps, warmup))
        except torch.OutOfMemoryError as exc:
            rows.append(dict(section="train", variant=v["name"], note=f"OOM: {exc}"[:200]))
        if device.type == "cuda":
            torch.cuda.empty_cache()
        log(f"  {v['name']}: {rows[-1].get('s_per_step', rows[-1].get('note'))}", flush=True)

    if a.ddp:
        v = dict(name="cached+fused+bf16", cached=True, fused=True, autocast=True)
        alone = run_variant(s, v, models_, device, steps, warmup)
        together = run_variant(s, v, models_, device, steps, warmup, ddp=True)
        import torch.distributed as dist

        worst = torch.tensor([alone["s_per_step"], together["s_per_step"]], device=device)
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        one, n_gpu = float(worst[0]), float(worst[1])
        tok = alone["tokens_per_step"]
        rows.append(
            dict(
                section="ddp",
                variant=v["name"],
                gpus=world,
                batch_per_gpu=alone["batch_per_gpu"],
                s_per_step_1gpu=one,
                s_per_step_ngpu=n_gpu,
                tokens_per_s_1gpu=tok / one,
                tokens_per_s_ngpu=world * tok / n_gpu,
                scaling_efficiency=one / n_gpu,
                peak_mem_gb=together["peak_mem_gb"],
            )
        )
        log(table(rows, list(rows[0])))
    else:
        todo = [v for v in variants(s.p["batch_size"]) if not a.only or v["name"] in a.only]
        if device.type == "cpu" and not a.only:  # inductor's C++ build takes minutes on a CPU
            todo = [v for v in todo if not v.get("compile")]
        for v in [v for v in todo if not v.get("compile")]:
            train_variant(v)
        for name, cached in PIPELINE_VARIANTS:
            if (a.only and name not in a.only) or over_budget(f"train {name}"):
                continue
            rows.append(pipeline_variant(s, name, cached, models_, device, steps, warmup))
            log(f"  {name}: {rows[-1]['s_per_step']}", flush=True)
        reserve = RESERVE_S if real else {}
        if not over_budget("eval", reserve.get("eval", 0.0)):
            rows.append(bridged_eval(s, models_, device))
        if not over_budget("infer", reserve.get("infer", 0.0) * a.samples):
            rows += infer_rows(s, models_, device, a.samples)
        if not over_budget("kv", reserve.get("kv", 0.0)):
            rows += kv_rows(models_, device, a.kv_tokens or (2048 if real else 64))
        for v in [v for v in todo if v.get("compile")]:  # last: compiling takes long
            train_variant(v, reserve=reserve.get("compile", 0.0))
        train = [r for r in rows if r["section"] == "train" and "s_per_step" in r]
        seed = next((r["tokens_per_s"] for r in train if r["variant"] == "seed"), None)
        for r in train:
            r["x_seed"] = seed and r["tokens_per_s"] / seed
        phases = [
            f"{k}_s"
            for k in (
                "source_forward",
                "teacher_forward",
                "loss_forward_backward",
                "translator_forward",
                "optimizer",
            )
        ]
        head = ["variant", "batch_per_gpu", "s_per_step", "tokens_per_s", "x_seed", "peak_mem_gb"]
        log("\n## training step\n" + table(train, head + phases))
        for sec, cols in (
            (
                "eval",
                [
                    "variant",
                    "s_per_batch",
                    "generated_tokens",
                    "generated_tokens_per_s",
                    "peak_mem_gb",
                ],
            ),
            (
                "infer",
                [
                    "variant",
                    "sample",
                    "input_tokens",
                    "output_tokens",
                    "latency_s",
                    "kv_cache_mb",
                    "peak_mem_gb",
                ],
            ),
            (
                "kv",
                [
                    "variant",
                    "tokens",
                    "formula_mb",
                    "cache_tensors_mb",
                    "cuda_held_mb",
                    "cuda_peak_over_weights_mb",
                    "held_over_formula",
                ],
            ),
            ("skipped", ["variant", "note"]),
        ):
            rs = [r for r in rows if r["section"] == sec]
            if rs:
                log(f"\n## {sec}\n" + table(rs, cols))
    sizes = dict(source=n_params(source), target=n_params(target), translator=tr_params)
    meas = measurement_rows(s, rows, mach, sizes) if not a.ddp else []
    if meas:
        log(
            "\n## for config/gpu_measurements.yaml (measurements:)\n"
            + yaml.safe_dump(meas, sort_keys=False, width=200)
        )
    result = dict(
        bench="bench_bridge",
        shape=a.shape,
        flag=CPU_FLAG if device.type == "cpu" else None,
        machine=mach,
        build_s=build_s,
        wall_s=time.perf_counter() - started,
        params=dict(source=n_params(source), target=n_params(target), translator=tr_params),
        settings={
            k: s.p[k]
            for k in (
                *ARCH_KEYS,
                "batch_size",
                "kl_positions",
                "eval_batch_size",
                "max_new_tokens",
                "hygiene",
            )
        },
        lengths=dataclasses.asdict(s.n),
        rows=rows,
        measurements=meas,
    )
    if a.out and rank == 0:
        from ablate.core.outputs import io

        io.write_json(a.out, result)
        log(f"wrote {a.out}")
    log(f"wall {result['wall_s']:.1f} s")
    if a.ddp:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
