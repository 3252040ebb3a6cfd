"""Packed SFT steps vs today's default path, side by side in one run, on the Ministral-3-3B text
shape (random init, bf16 + fp32 masters, GPU), through the pipeline's own training loop
(ablate.core.training.loop.setup with ablate.mask.training.policy.recipe, then loop.step). Prints a
markdown table; --out writes the raw rows.

    PYTHONPATH=src python bench/bench_packing.py [--shape real|tiny] [--only ROW ...]
        [--steps N] [--liger] [--compile] [--hfopt] [--profile N] [--window] [--ddp N ...]
        [--out bench/results/bench_packing_h200.json]

Rows (each runs causal and prefix_bidir, except full-packed-flex: causal only):
  seed-default       the seed configuration today: 16 alpaca-like examples per optimizer step,
                     batch 1 x grad_accum 16, Adafactor, attn sdpa_prefix_split, packing off
  seed-packed-flex   the same 16 examples per step, packing: true (one row), attn flex_attention
                     (BlockMask: the blocks between examples are skipped)
  full-default       full rows: 8 examples of 1024 tokens each (prompt 1/8-1/2), batch 8 x 1,
                     no padding, Adafactor, sdpa_prefix_split, packing off
  full-packed-flex   the same 8 examples packed into one 8192-token row, flex_attention
  seed-packed-sdpa   as seed-packed-flex with attn sdpa: a dense per-example mask (the
                     memory-efficient kernel, no flash)
  seed-packed-leaky  control, causal only: as seed-packed-sdpa but the examples of a row attend to
                     the earlier ones (a plain causal mask over the row): its loss difference
                     shows whether the 1e-3 loss check can see a wrong mask at all
  (+ seed-packed-flex-liger with --liger: liger-kernel's fused linear cross-entropy as the fast
   head's loss; + seed-packed-flex-compile with --compile: compile_layers: true, every decoder
   layer torch.compile'd in the training path; + seed-packed-flex-compile-hfmask with --only:
   the same with the flex mask composed by HF's mask builders, as the pipeline built it before
   packing.key_spans)
  (+ ROW-hfopt for each row with --hfopt: the same row with transformers' own Adafactor loop on
   the masters instead of ablate.core.training.adafactor.FusedAdafactor, which the optimizer
   picks on CUDA (optim.fused_inner); the table's optimizer column names the class that ran)
--profile N: N more steps of each row under torch.profiler (bench/step_profile.py, GPU only),
after the timed ones; its table is printed per row and kept in --out. FusedAdafactor's kernels
are inductor Triton kernels, which step_profile counts under "norm/act/rope (fused)"; the HF
loop's land in "elementwise/reduce", so compare a row with its -hfopt twin.
--ddp N [N ...]: each row (causal) on 1 GPU with the one-GPU default recipe, then on N
data-parallel processes (torchrun, one GPU each; the loop's recipe), the same 16 pairs per
step (--pairs N: N, the global batch at which a second GPU pays), timed with --window; prints
bench_finetune.py's scaling table (efficiency against the one GPU, loss curves, --profile: rank 0's
compute, collectives, exposed collectives and idle time); each row's JSON (printed and in --out)
has ``compiles_by_rank``: each process's torch.compile frames, all and inside the timed window.
--window: the steps after the warm-up timed as one interval with logging_steps 10, as a finetune
runs (its only device reads are at logs), instead of a sync around every step (the default, which
also makes the host wait at each step's start and end); the row's ``window_compiles`` counts the
frames compiled inside it (a new packed shape recompiling there).
Every row starts from the same weights (seed 0) and trains on the same examples in the same order,
so `loss vs default` (the largest relative difference of a step's loss from the default row's of
its group and policy) checks that packing computes the same steps (target 1e-3, bf16).

Alpaca-like lengths (no hub here, so no real rows): :func:`alpaca_like_lengths`, a generator whose
parameters are stated in ALPACA, chosen from the Alpaca format and commonly quoted statistics of
the 52k Stanford Alpaca set (about 40 % of rows have an input; short instructions; responses from a
word to several hundred tokens, median well under 100), not measured here: the run prints the
sample's mean/median/max so it can be compared with a tokenized copy of the real set.

MFU = 6 x N_params x real tokens/s / 989 TFLOP/s, as in bench/bench_finetune.py (N = 3.43 B incl.
the tied embedding; attention FLOPs not counted; the fast head runs lm_head on response tokens
only, so the hardware does less than 6N per token).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import bench_finetune as bf  # the same model shape, builder, steps and MFU convention
import torch
from step_profile import StepProfiler
from step_profile import print_table as print_profile

from ablate.core.execution import parallel
from ablate.core.training import optim, params
from ablate.mask import masks
from ablate.mask.training import packing
from ablate.mask.training import params as mask_params
from ablate.mask.training.policy import PolicyRecipe
from ablate.mask.training.policy import recipe as policy_recipe

# Token counts (Tekken-like tokenizer) of an Alpaca row: template + instruction (+ input) as the
# prompt, response + EOS. Lognormal medians / sigmas; the template sizes are those of
# ablate.mask.sft_data's two prompts.
ALPACA = dict(
    template_no_input=36,
    template_with_input=46,
    p_input=0.4,
    instruction=(16, 0.5),
    input=(24, 0.9),
    response=(70, 1.0),
)
SEED_EXAMPLES_PER_STEP = 16  # finetune defaults: batch_size 1 x grad_accum 16
PAIRS = SEED_EXAMPLES_PER_STEP  # --pairs: the seed rows' pairs per step (grad_accum)
FULL_T, FULL_EXAMPLES = 1024, 8

SEED = dict(batch_size=1, grad_accum=16, optim="adafactor")
FULL = dict(batch_size=FULL_EXAMPLES, grad_accum=1, optim="adafactor")
# the targets' rows first: a run cut off by a time limit keeps them (--out is rewritten per row)
ROWS = {
    "seed-default": ("seed", dict(SEED, attn_implementation=masks.PREFIX_SDPA)),
    "seed-packed-flex": ("seed", dict(SEED, attn_implementation="flex_attention", packing=True)),
    "full-default": ("full", dict(FULL, attn_implementation=masks.PREFIX_SDPA)),
    "full-packed-flex": ("full", dict(FULL, attn_implementation="flex_attention", packing=True)),
    "seed-packed-sdpa": ("seed", dict(SEED, attn_implementation="sdpa", packing=True)),
}
# the control: packed with a plain causal mask over the whole row (examples attend to earlier
# ones). Its loss must differ from the default's by more than the 1e-3 the packed rows must meet,
# or the loss check has no power at random init (near-uniform logits).
ROWS["seed-packed-leaky"] = ("seed", dict(ROWS["seed-packed-sdpa"][1]), "leaky")
OPTIONAL_ROWS = {
    "seed-packed-flex-liger": ("seed", dict(ROWS["seed-packed-flex"][1]), "liger"),
    "seed-packed-flex-compile": ("seed", dict(ROWS["seed-packed-flex"][1], compile_layers=True)),
    # the flex mask as HF's builders compose it (packing.composed_mask), for comparison
    "seed-packed-flex-compile-hfmask": (
        "seed",
        dict(ROWS["seed-packed-flex"][1], compile_layers=True),
        "hfmask",
    ),
}
CAUSAL_ONLY = {"full-packed-flex", "seed-packed-leaky"}
HFOPT = "-hfopt"  # a row's twin with transformers' own Adafactor loop (--hfopt)
PROFILE_STEPS = 0  # --profile
WINDOW: int | None = None  # --window: the warm-up steps (the timed window starts after them)
WINDOW_LOG = 10  # --window: logging_steps, the schema's default (a finetune's only device reads)


def alpaca_like_lengths(n: int, seed: int, max_len: int, scale: float = 1.0) -> list[tuple]:
    """(total tokens, prompt tokens) of ``n`` Alpaca-like rows (see ALPACA), truncated at
    ``max_len`` keeping one response token, as ablate.mask.sft_data does; ``scale`` shrinks every
    part (the tiny shape)."""
    g = torch.Generator().manual_seed(seed)

    def draw(median: float, sigma: float) -> int:
        z = float(torch.randn((), generator=g))
        return max(1, round(median * math.exp(sigma * z) * scale))

    out = []
    for _ in range(n):
        with_input = float(torch.rand((), generator=g)) < ALPACA["p_input"]
        prompt = round(ALPACA["template_with_input" if with_input else "template_no_input"] * scale)
        prompt += draw(*ALPACA["instruction"]) + (draw(*ALPACA["input"]) if with_input else 0)
        prompt = min(prompt, max_len - 1)
        total = min(prompt + draw(*ALPACA["response"]) + 1, max_len)
        out.append((total, prompt))
    return out


def make_examples(lengths: list[tuple], seed: int, vocab: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {"input_ids": torch.randint(1000, vocab, (k,), generator=g).tolist(), "prompt_length": p}
        for k, p in lengths
    ]


def liger_head_loss():
    """The fast head's loss as liger-kernel's fused linear cross-entropy (no full logits)."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    fused = LigerFusedLinearCrossEntropyLoss(reduction="sum")

    def head_loss(lm_head, hidden, targets):
        return fused(lm_head.weight, hidden, targets, lm_head.bias)

    return head_loss


def one_document(batch: dict) -> dict:
    """The packed batch with every position of a row in one example (id 0): under causal, one
    long document whose examples attend to earlier ones (the seed-packed-leaky control)."""
    return {**batch, packing.SEQ_IDS: torch.zeros_like(batch[packing.SEQ_IDS])}


def leaky_forward(model, batch, policy):
    """The packed row's forward with the examples not kept apart (the seed-packed-leaky row)."""
    return packing.packed_forward_kwargs(model, one_document(batch), policy)


def hfmask_forward(model, batch, policy):
    """The packed row's forward with HF's composed mask, under flex_attention too (not the key
    spans: the -hfmask rows)."""
    mask = packing.composed_mask(model, batch, policy, getattr(model, "dtype", torch.float32))
    return packing.masked_forward_kwargs(model, batch, mask)


#: The forward a row's option runs in place of the policy's packed one.
FORWARDS = {"leaky": leaky_forward, "hfmask": hfmask_forward}


@dataclasses.dataclass(eq=False)
class OtherForward(PolicyRecipe):
    """The policy's recipe with a row's ``forward`` (:data:`FORWARDS`) in place of its own."""

    forward: Callable[..., dict] | None = None

    def forward_kwargs(self, model, batch: dict) -> dict:
        return self.forward(model, batch, self.policy)


def hf_optimizer(trainer, p: mask_params.MaskParams) -> None:
    """A -hfopt row: the trainer's optimizer rebuilt on the masters with transformers' own Adafactor
    loop (optim.fused_inner puts FusedAdafactor there on CUDA); the one setup built is dropped,
    and its gradient hooks with it."""
    cls, kwargs = optim.optimizer_class(p)
    groups = optim.decay_groups(trainer.model, p.weight_decay)
    trainer.optimizer = optim.MasterWeightsOptimizer(groups, cls, kwargs)
    trainer.scheduler = optim.build_scheduler(trainer.optimizer, p)


def compiled_frames() -> int:
    """The frames torch.compile has compiled in this process so far (each recompile one more)."""
    from torch._dynamo.utils import counters

    return counters["frames"]["ok"]


def step_tokens(logs: list[dict], before: int = 0) -> list[int]:
    """The non-pad tokens of each logged interval (the loop's count: trainer.state.tokens_seen)."""
    seen = [before, *(e["tokens_seen"] for e in logs)]
    return [b - a for a, b in zip(seen, seen[1:])]


def run_row(name: str, overrides: dict, option: str | None, policy: str, data, steps: int, T: int):
    """One row: ``steps`` timed-or-warm-up steps, then PROFILE_STEPS profiled ones.

    Each step is timed to a device sync after it, and its loss and tokens read after that;
    with --window (WINDOW: the warm-up steps) the steps after the warm-up are one interval
    from a sync before the first to one after the last, read every WINDOW_LOG steps as a
    finetune logs (its only device reads)."""
    p = mask_params.resolve_params(
        {
            **overrides,
            "max_steps": steps + PROFILE_STEPS,
            "eval_size": 0,
            "logging_steps": WINDOW_LOG if WINDOW is not None else 1,
            "no_learning_steps": 0,
            "plateau_patience": 0,
            "warmup_ratio": 0.0,
            "max_seq_len": T,
        },
        "finetune",
    )
    model = bf.build_model(params.model_dtype(p), p.attn_implementation)
    n_params = sum(t.numel() for t in model.parameters())
    recipe = policy_recipe(policy, p, 11)
    if option == "liger":
        recipe = dataclasses.replace(recipe, head_loss=liger_head_loss())
    forward = FORWARDS.get(option)
    if forward is not None:  # this row's packed steps under another mask
        recipe = OtherForward(**vars(recipe), forward=forward)
    trainer = bf.bench_trainer(model, data, policy, p, f"{name} {policy}", recipe)
    if name.endswith(HFOPT):
        hf_optimizer(trainer, p)
    inner = trainer.master.inner if trainer.master is not None else trainer.optimizer
    recipe = trainer.recipe
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    window_s = window_tokens = window_compiles = None
    if WINDOW is None:
        times, logs = bf.train_steps(trainer, steps)
        tokens = step_tokens(logs)
    else:
        _, warm = bf.train_steps(trainer, WINDOW, log_every=WINDOW_LOG)
        bf.sync()
        t0, frames = time.perf_counter(), compiled_frames()
        _, logs = bf.train_steps(trainer, steps - WINDOW, log_every=WINDOW_LOG, sync_each=False)
        bf.sync()
        window_s = time.perf_counter() - t0
        window_compiles = compiled_frames() - frames  # recompiles inside the timed window
        window_tokens = logs[-1]["tokens_seen"] - warm[-1]["tokens_seen"]
        logs, times, tokens = warm + logs, [], step_tokens(warm + logs)
    prof = StepProfiler(PROFILE_STEPS) if PROFILE_STEPS else None
    if prof is not None:
        with prof:
            bf.train_steps(trainer, PROFILE_STEPS, log_every=PROFILE_STEPS + 1, sync_each=False)
    profile = prof.table() if prof else None
    if profile is not None:
        print_profile(f"{name} {policy}", profile)
    del trainer, model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return dict(
        row=name,
        policy=policy,
        attn=p.attn_implementation,
        packing=p.packing,
        option=option,
        optim=p.optim,
        batch=f"{p.batch_size}x{p.grad_accum}",
        optimizer=type(inner).__name__,
        step_times=times,
        step_tokens=tokens,
        steps=steps,
        window_s=window_s,
        window_tokens=window_tokens,
        window_compiles=window_compiles,
        compiled_frames=compiled_frames(),
        losses=[e["loss"] for e in logs],
        profile=profile,
        n_params=n_params,
        peak_gb=torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None,
        world_size=parallel.world_size(),
        recipe=recipe,
        weights=bf.weights_label(p, recipe),
    )


def summarise(r: dict, warmup: int, peak_tflops: float) -> None:
    """s/step, tokens/s and MFU over the steps after ``warmup`` (compilation, allocator)."""
    if r.get("window_s"):  # --window: one interval, no per-step syncs
        n = r["timed_steps"] = r["steps"] - warmup
        r["s_per_step"], r["tokens_per_step"] = r["window_s"] / n, r["window_tokens"] / n
        r["tokens_per_s"] = r["window_tokens"] / r["window_s"]
        r["mfu"] = 6 * r["n_params"] * r["tokens_per_s"] / (peak_tflops * 1e12 * r["world_size"])
        return
    times, tokens = r["step_times"][warmup:], r["step_tokens"][warmup:]
    r["timed_steps"] = len(times)
    r["s_per_step"] = sum(times) / len(times)
    r["tokens_per_step"] = sum(tokens) / len(tokens)
    r["tokens_per_s"] = sum(tokens) / sum(times)
    r["mfu"] = 6 * r["n_params"] * r["tokens_per_s"] / (peak_tflops * 1e12 * r["world_size"])


def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def compare(results: list[dict]) -> None:
    """Speed-up and step-loss difference against the default row of the same group and policy;
    the time ratio against the same row's causal run."""
    for r in results:
        base = [
            b
            for b in results
            if b["group"] == r["group"]
            and b["policy"] == r["policy"]
            and not b["packing"]
            and b["option"] is None
        ]
        causal = [b for b in results if b["row"] == r["row"] and b["policy"] == "causal"]
        if base and base[0]["losses"] and len(base[0]["losses"]) == len(r["losses"]):
            b = base[0]
            r["speedup_vs_default"] = b["s_per_step"] / r["s_per_step"]
            r["loss_rel_diff_vs_default"] = max(
                abs(x - y) / abs(y) for x, y in zip(r["losses"], b["losses"])
            )
        if causal:
            r["x_causal"] = r["s_per_step"] / causal[0]["s_per_step"]


def print_table(results: list[dict]) -> None:
    print(
        "\n| row | policy | attn | packing | examples/step | tokens/step | s/step | tokens/s | MFU "
        "| x default (speed-up) | loss vs default (max rel) | x causal | peak GB | optimizer |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    per_step = {"seed": PAIRS, "full": FULL_EXAMPLES}
    for r in results:
        attn = r["attn"] + (f" + {r['option']}" if r["option"] else "")
        print(
            f"| {r['row']} | {r['policy']} | {attn} | {'on' if r['packing'] else 'off'} | "
            f"{per_step[r['group']]} ({r['batch']}) | {r['tokens_per_step']:.0f} | "
            f"{r['s_per_step']:.3f} | {r['tokens_per_s'] / 1e3:.1f}k | {r['mfu']:.3f} | "
            f"{fmt(r.get('speedup_vs_default'), '.2f')} | "
            f"{fmt(r.get('loss_rel_diff_vs_default'), '.1e')} | {fmt(r.get('x_causal'), '.3f')} | "
            f"{fmt(r['peak_gb'], '.1f')} | {r.get('optimizer', '-')} |"
        )


def write_out(path: str, meta: dict, results: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump({**meta, "rows": results}, f, indent=1)


def row_entry(name: str) -> tuple[str, dict, str | None]:
    """(group, params, option) of a row of ROWS or OPTIONAL_ROWS."""
    group, params, *option = ROWS.get(name) or OPTIONAL_ROWS[name]
    if group == "seed":  # --pairs: the global batch of a seed row, batch 1 x grad_accum PAIRS
        params = dict(params, grad_accum=PAIRS)
    return group, params, option[0] if option else None


def shape_setup(tiny: bool) -> tuple[int, float]:
    """(row length, length scale) of ``--shape``: the model shape set on bench_finetune."""
    if tiny:  # the same code at a toy size on CPU: checks the script, not speed
        bf.DEVICE = "cpu"
        bf.SHAPE.update(bf.SMOKE_SHAPE, vocab_size=2048)
        return 128, 0.125
    torch.backends.cuda.matmul.allow_tf32 = True
    return FULL_T, 1.0


def row_data(group: str, steps: int, T: int, scale: float) -> list[dict]:
    """The examples of a row's group for ``steps`` steps (and PROFILE_STEPS more): the seed's
    alpaca-like pairs or full rows; the same for every row and process count."""
    n = steps + PROFILE_STEPS
    if group == "seed":
        lengths = alpaca_like_lengths(n * PAIRS, seed=1, max_len=T, scale=scale)
        return make_examples(lengths, seed=2, vocab=bf.SHAPE["vocab_size"])
    full = [(T, T // 8 + (i * 7) % (3 * T // 8)) for i in range(n * FULL_EXAMPLES)]
    return make_examples(full, seed=3, vocab=bf.SHAPE["vocab_size"])


def ddp_worker(name, steps, warmup, tiny, profile, out, pairs=SEED_EXAMPLES_PER_STEP) -> None:
    """One process of a --ddp row (ablate.core.execution.parallel.launch): timed with --window; rank
    0 writes it."""
    global WINDOW, PROFILE_STEPS, PAIRS
    T, scale = shape_setup(tiny)
    WINDOW, PROFILE_STEPS, PAIRS = warmup, profile if not tiny else 0, pairs
    group, over, option = row_entry(name)
    r = run_row(name, over, option, "causal", row_data(group, steps, T, scale), steps, T)
    r["group"] = group
    summarise(r, warmup, bf.PEAK_TFLOPS)
    # each process's compiles (all, and inside the timed window): a process that recompiles for
    # its own packed shapes holds the others at the step's collectives
    mine = {"compiled_frames": r["compiled_frames"], "window_compiles": r["window_compiles"]}
    every = [mine] * parallel.world_size()
    if parallel.world_size() > 1:
        torch.distributed.all_gather_object(every, mine)
    r["compiles_by_rank"] = every
    if parallel.rank() == 0:
        Path(out).write_text(json.dumps(r))


def run_ddp(names: list[str], counts: list[int], args, tiny: bool) -> list[dict]:
    rows = []
    for name in names:
        for n in [1, *counts]:
            out = f"/tmp/bench_packing_ddp_{name}_{n}.json"
            kwargs = dict(
                name=name, steps=args.steps, warmup=args.warmup, tiny=tiny,
                profile=args.profile, out=out, pairs=PAIRS,
            )  # fmt: skip
            r = bf.launch_row("bench_packing:ddp_worker", kwargs, n)
            r["batch"] = f"{PAIRS} pairs packed"
            rows.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "step_times"}), flush=True)
    return bf.scaling(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=["real", "tiny"], default="real")
    ap.add_argument("--only", nargs="*", choices=[*ROWS, *OPTIONAL_ROWS])
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per row")
    ap.add_argument("--warmup", type=int, default=None, help="untimed first steps per row")
    ap.add_argument("--liger", action="store_true", help="add seed-packed-flex-liger")
    ap.add_argument("--compile", action="store_true", help="add seed-packed-flex-compile")
    ap.add_argument("--hfopt", action="store_true", help="add each row's ROW-hfopt twin")
    ap.add_argument(
        "--profile", type=int, default=0, help="N: profile N more steps of each row (GPU only)"
    )
    ap.add_argument(
        "--policies", nargs="+", default=["causal", "prefix_bidir"], help="policies of each row"
    )
    ap.add_argument(
        "--window",
        action="store_true",
        help=f"time the steps after the warm-up as one interval, logging every {WINDOW_LOG} steps "
        "(a finetune's syncs) instead of syncing around each step; --steps and --warmup: "
        f"multiples of {WINDOW_LOG}",
    )
    ap.add_argument(
        "--ddp", type=int, nargs="+", default=[], help="N ...: 1 GPU vs N processes (above)"
    )
    ap.add_argument(
        "--pairs",
        type=int,
        default=SEED_EXAMPLES_PER_STEP,
        help="pairs per optimizer step of the seed rows (batch 1 x grad_accum PAIRS; with --ddp "
        "the global batch, split over the processes)",
    )
    ap.add_argument("--out", help="write the raw rows as JSON (e.g. under bench/results/)")
    ap.add_argument(
        "--table", nargs="+", metavar="JSON", help="only print the table of earlier --out files"
    )
    args = ap.parse_args(argv)
    if args.table:  # rows of several runs (e.g. split by --only), compared as one
        rows = [r for f in args.table for r in json.loads(Path(f).read_text())["rows"]]
        compare(rows)
        print_table(rows)
        return 0
    tiny = args.shape == "tiny"
    global PROFILE_STEPS, PAIRS
    PROFILE_STEPS, PAIRS = args.profile, args.pairs
    if PROFILE_STEPS and tiny:
        print("--profile needs a CUDA GPU (the profiler counts CUDA kernels)", file=sys.stderr)
        return 2
    if not tiny and not torch.cuda.is_available():
        print("bench_packing needs a CUDA GPU (or --shape tiny)", file=sys.stderr)
        return 2
    T, scale = shape_setup(tiny)
    steps, warmup = args.steps or (2 if tiny else 5), args.warmup or (1 if tiny else 2)
    if args.ddp:
        if steps % WINDOW_LOG or warmup % WINDOW_LOG or not 0 < warmup < steps:
            print(f"--ddp times with --window: --steps, --warmup multiples of {WINDOW_LOG}")
            return 2
        args.steps, args.warmup = steps, warmup
        rows = run_ddp(args.only or ["seed-packed-flex-compile"], args.ddp, args, tiny)
        bf.print_scaling(rows)
        if args.out:
            meta = dict(device=torch.cuda.get_device_name(0) if not tiny else "cpu (tiny shape)")
            write_out(args.out, {**meta, "command": " ".join(sys.argv)}, rows)
        return 0
    if args.window:
        global WINDOW
        if steps % WINDOW_LOG or warmup % WINDOW_LOG or not 0 < warmup < steps:
            print(
                f"--window: --steps and --warmup must be multiples of {WINDOW_LOG}, warmup < steps",
                file=sys.stderr,
            )
            return 2
        WINDOW = warmup
    names = list(args.only or ROWS)
    if not args.only:
        names += ["seed-packed-flex-liger"] * args.liger + [
            "seed-packed-flex-compile"
        ] * args.compile
    if args.hfopt:
        names = [m for n in names for m in (n, n + HFOPT)]
    if tiny:  # flex_attention has no CPU backward (the loader refuses it there)
        names = [n for n in names if "flex" not in n]
    device = torch.cuda.get_device_name(0) if not tiny else "cpu (tiny shape)"
    print(f"# {device}, torch {torch.__version__}", flush=True)

    data = {group: row_data(group, steps, T, scale) for group in ("seed", "full")}
    # the timed pairs' lengths (profiled steps draw more examples after them: one stream)
    timed = [data["seed"][i] for i in range(steps * PAIRS)]
    totals = sorted(len(ex["input_ids"]) for ex in timed)
    dist = dict(
        mean=statistics.mean(totals),
        median=statistics.median(totals),
        p90=totals[int(0.9 * (len(totals) - 1))],
        max=totals[-1],
        prompt_mean=statistics.mean(ex["prompt_length"] for ex in timed),
    )
    print(f"# alpaca-like example tokens: {json.dumps(dist)}", flush=True)
    meta = dict(
        device=device,
        torch=torch.__version__,
        shape=args.shape,
        steps=steps,
        warmup=warmup,
        alpaca_like={"params": ALPACA, "sample": dist},
    )
    results = []
    for name in names:
        base = name.removesuffix(HFOPT)
        group, over, option = row_entry(base)
        for policy in ["causal"] if base in CAUSAL_ONLY else args.policies:
            t0 = time.time()
            try:
                r = run_row(name, over, option, policy, data[group], steps, T)
            except Exception as exc:  # report the row (OOM, a missing optional kernel), keep going
                print(f"{name} {policy}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            r["group"], r["wall_s"] = group, time.time() - t0
            summarise(r, warmup, bf.PEAK_TFLOPS)
            results.append(r)
            compare(results)
            print(json.dumps({k: v for k, v in r.items() if k != "step_times"}), flush=True)
            if args.out:
                write_out(args.out, meta, results)
    print_table(results)
    print(
        f"\n{len(results)} rows; {steps} steps each, the first {warmup} untimed; "
        f"example tokens {json.dumps(dist)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
