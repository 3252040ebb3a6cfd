"""The bridge benchmark's set-up and training steps (bench/bench_bridge.py runs them): the real or
tiny shapes, the frozen models built on the device, the pipeline's loss (``Pair.loss``) in timed
phases under each variant, and the pipeline's own step: ``ablate.core.training.loop.step`` on the
run ``ablate.bridge.training.recipe.translator_trainer`` builds, as
``entries.train_entry`` trains."""

from __future__ import annotations

import dataclasses
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml

from ablate.bridge import cost
from ablate.bridge import params as bridge_params
from ablate.bridge.translator import ARCH_KEYS, BottleneckedGatedTranslator, median_row_rms
from ablate.core.outputs.phases import Phases

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ROOT / "config/gpu_measurements.yaml"
LATENTWIRE = ROOT / "config/latentwire.yaml"
TINY_ARCH = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)
TINY_VOCAB = {"source": 600, "target": 900}
TINY_LENGTHS = cost.Lengths(source=24, prompt=24, answer=16)
TINY_OVERRIDES = dict(max_new_tokens=8, eval_batch_size=4)
# Seconds an item needs at the real shape (it starts only if that much budget is left): decoding
# ~40 ms per new token at batch 1 (HF generate, 7-8 B); compiling the translator ~1 min.
RESERVE_S = {"eval": 20.0, "infer": 75.0, "kv": 10.0, "compile": 60.0}
CPU_FLAG = "TINY SHAPE ON CPU: checks the script only, not the real grid; replace with the GPU run"


#: The pipeline's loop step timed end to end (no phases): cross-checks the tensor-level step.
PIPELINE_VARIANTS = (("pipeline:seed", False), ("pipeline:cached", True))


def variants(batch: int) -> list[dict]:
    base = dict(cached=True, fused=True, autocast=True)
    return [
        dict(name="seed", cached=False),
        dict(name="cached", cached=True),
        dict(name="cached+fused", cached=True, fused=True),
        dict(name="cached+fused+bf16", **base),
        dict(name="cached+fused+bf16+teacher_cached", **base, teacher_cached=True),
        dict(name="cached+fused+bf16+gradckpt", **base, gradckpt=True),
        dict(name="cached+fused+bf16+batch_x2", **base, batch=2 * batch),
        dict(name="cached+fused+bf16+batch_x4", **base, batch=4 * batch),
        dict(name="cached+fused+bf16+compile", **base, compile=True),
    ]


class StubTokenizer:
    """What evaluate.decoding needs from a tokenizer; no EOS: every answer is long."""

    pad_token_id, eos_token_id = 0, None

    def decode(self, row, skip_special_tokens=True):
        return ""


# --- set-up -------------------------------------------------------------------------------------
def setup(shape: str) -> SimpleNamespace:
    lw = yaml.safe_load(LATENTWIRE.read_text())["bridge"]
    ref = yaml.safe_load(MEASUREMENTS.read_text())
    names = {r: lw[r]["path"] for r in ("source", "target")}
    cfgs = {r: dict(ref["models"][names[r]]["text_config"]) for r in names}
    if shape == "real":
        p = bridge_params.resolve(lw["defaults"], "bridge.defaults")
        n = cost.Lengths.of(ref["bridge_lengths"][p["dataset"]], bridge_params.check(p))
    else:
        p = bridge_params.resolve(TINY_OVERRIDES, "bench")
        cfgs = {r: {**c, **TINY_ARCH, "vocab_size": TINY_VOCAB[r]} for r, c in cfgs.items()}
        n = TINY_LENGTHS
    return SimpleNamespace(p=p, n=n, cfgs=cfgs, names=names, shape=shape)


def build_lm(text_config: dict, dtype: torch.dtype, device: torch.device):
    from transformers import AutoConfig, AutoModelForCausalLM

    kw = dict(text_config)
    cfg = AutoConfig.for_model(kw.pop("model_type"), **kw)
    torch.manual_seed(0)
    with torch.device(device):  # weights initialised where they live: no host copy of 15 B
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    model.eval().requires_grad_(False)
    model.generation_config.eos_token_id = None  # random weights: never stop early
    model.generation_config.pad_token_id = 0
    return model


def build_translator(s, source, target, device) -> BottleneckedGatedTranslator:
    rms = median_row_rms(target.get_input_embeddings().weight)
    torch.manual_seed(s.p["seed"])
    with torch.device(device):  # initialised where it trains
        return BottleneckedGatedTranslator(
            d_src=source.config.hidden_size,
            d_tgt=target.config.hidden_size,
            target_rms=rms,
            **{k: s.p[k] for k in ARCH_KEYS},
        )


def n_params(m) -> int:
    return sum(t.numel() for t in m.parameters())


# --- timing -------------------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def phases(device) -> Phases:
    """Seconds per phase, the device synchronised as each phase starts and ends."""
    return Phases(sync=lambda: sync(device))


def reset_peak(device):
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


# --- one training step --------------------------------------------------------------------------
def make_batch(s, B: int, source, target, device, g) -> SimpleNamespace:
    vs, vt = source.config.vocab_size, target.config.vocab_size
    n = s.n

    def ids(v, *shape):
        return torch.randint(3, v, shape, generator=g).to(device)

    return SimpleNamespace(
        B=B,
        src=ids(vs, B, n.source),
        src_mask=torch.ones(B, n.source, dtype=torch.long, device=device),
        bos=ids(vt, 1),
        cue=ids(vt, n.cue),
        prompt=ids(vt, B, n.prompt),
        answer=ids(vt, B, n.answer),
    )


@torch.no_grad()
def source_states(source, b):
    return source.base_model(input_ids=b.src, attention_mask=b.src_mask).last_hidden_state


def translator_call(tr, ph: Phases, autocast: bool):
    """The translator as ``Pair.soft`` calls it, its forward timed as a phase of its own (inside
    the loss's) and, for the bf16 variants, under autocast (the frozen models keep their dtype)."""

    def run(h, mask):
        with (
            ph("translator_forward"),
            torch.autocast(h.device.type, torch.bfloat16, enabled=autocast),
        ):
            return tr(h, mask)

    return run


class HeldStates:
    """A states cache (as :class:`ablate.bridge.states.Reader`: ``batch(items, device)``) that
    holds one batch's tensors: a pair given it as ``cache`` or ``teacher_cache`` reads them in
    place of the source's or the teacher's forward."""

    def __init__(self, states: torch.Tensor, mask: torch.Tensor | None = None):
        self.states, self.mask = states, mask

    def batch(self, items, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = None if self.mask is None else self.mask.to(device)
        return self.states.to(device), mask


def train_step(pair, v, tr, opt, items, cache, ph: Phases, at: int) -> torch.Tensor:
    """One step of the pipeline's loss (``Pair.loss`` at step ``at``) in phases: the two frozen
    forwards, live or from ``cache`` as the variant says; the loss's forward and backward (the
    translator, the target); the clipped optimizer step."""
    with ph("source_forward"):
        states = cache["states"] if v.get("cached") else pair.source_states(items)
    with ph("teacher_forward"):
        teacher = cache["teacher"] if v.get("teacher_cached") else pair.teacher_states(items)[0]
    with ph("loss_forward_backward"):
        run = translator_call(tr, ph, bool(v.get("autocast")))
        # the loss reads the two forwards' results as from the pair's caches
        held = dataclasses.replace(
            pair, cache=HeldStates(*states), teacher_cache=HeldStates(teacher)
        )
        loss, _, _ = held.loss(run, items, at)
        loss.backward()
    with ph("optimizer"):
        torch.nn.utils.clip_grad_norm_(opt.param_groups[0]["params"], pair.p.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return loss.detach()


def run_variant(s, v, models_, device, steps: int, warmup: int, ddp: bool = False) -> dict:
    source, target = models_
    B = v.get("batch", s.p["batch_size"])
    pair, items = pipeline_pair(s, models_, B)
    at = s.p["warmup_steps"] + 1  # the KL term on, as in most of a run
    tr = build_translator(s, source, target, device).train()
    module = tr
    if v.get("compile"):
        module = torch.compile(tr)
    if ddp:
        module = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt = torch.optim.AdamW(
        tr.parameters(), lr=s.p["lr"], betas=(0.9, 0.98), fused=bool(v.get("fused"))
    )
    cache = {"states": pair.source_states(items), "teacher": pair.teacher_states(items)[0]}
    if v.get("gradckpt"):
        target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        target.train()  # HF checkpoints only in training mode (the target has no dropout)
    try:
        for _ in range(warmup):
            train_step(pair, v, module, opt, items, cache, phases(device), at)
        reset_peak(device)
        ph = phases(device)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = train_step(pair, v, module, opt, items, cache, ph, at)
        sync(device)
        dt = (time.perf_counter() - t0) / steps
    finally:
        if v.get("gradckpt"):
            target.gradient_checkpointing_disable()
            target.eval()
    tokens = B * cost.example_tokens(s.p["K"], s.n)
    return dict(
        section="train",
        variant=v["name"],
        batch_per_gpu=B,
        s_per_step=dt,
        tokens_per_step=tokens,
        tokens_per_s=tokens / dt,
        peak_mem_gb=peak_gb(device),
        loss=float(loss),
        finite=bool(torch.isfinite(loss)),
        teacher_cache_mb_per_example=(
            cache["teacher"][0].nbytes / 2**20 if v.get("teacher_cached") else None
        ),
        translator_params=n_params(tr),
        **{f"{k}_s": t / steps for k, t in ph.seconds.items()},
    )


# --- the pipeline's own step (the core loop's step on recipe.translator_trainer's trainer)
class LengthTokenizer:
    """A stand-in for a real tokenizer (none offline): a text becomes ``lengths[text]`` ids (else
    ``default``), the same ids every time, so ``Pair`` builds the benchmark's lengths from
    synthetic items: BOS + prompt, the cue, the answer + EOS."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __init__(self, vocab: int, lengths: dict[str, int], default: int):
        self.vocab, self.lengths, self.default = vocab, lengths, default

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        g = torch.Generator().manual_seed(zlib.crc32(text.encode()))
        ids = torch.randint(3, self.vocab, (self.lengths.get(text, self.default),), generator=g)
        return {"input_ids": ([self.bos_token_id] if add_special_tokens else []) + ids.tolist()}

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return ""


def pipeline_pair(s, models_, B: int):
    """ablate.bridge.pair.Pair over the benchmark's models and B synthetic GSM8K-shaped items; the
    variant's params resolved first (a variant's overrides, as a group of its whole batch, may not
    be in their canonical spelling), as :func:`pipeline_step`'s."""
    from ablate.bridge import world
    from ablate.bridge.pair import Pair

    source, target = models_
    n, params = s.n, bridge_params.check(bridge_params.resolve(s.p))
    items = [{"id": f"b{i}", "question": f"q{i}", "answer": f"a{i}\n#### {i}"} for i in range(B)]
    answers = {world.answer_text("gsm8k", it): n.answer - 1 for it in items}  # + EOS
    src_tok = LengthTokenizer(source.config.vocab_size, {}, n.source - 1)  # + BOS
    tgt_tok = LengthTokenizer(
        target.config.vocab_size, {world.ANSWER_CUE: n.cue, **answers}, n.prompt - 1
    )
    return Pair(source, src_tok, target, tgt_tok, "gsm8k", params), items


class FixedStates:
    """An in-memory stand-in for a frozen-state cache (:class:`ablate.bridge.states.Reader`, what
    ``Pair.cache`` and ``Pair.teacher_cache`` read): the (states, mask) it holds, already on the
    device, for a batch of exactly the items it was made for (no per-step copy from the host)."""

    def __init__(self, items, states: torch.Tensor, mask: torch.Tensor):
        self.ids, self.states, self.mask = [it["id"] for it in items], states, mask

    def batch(self, items, device) -> tuple[torch.Tensor, torch.Tensor]:
        if [it["id"] for it in items] != self.ids:
            raise ValueError("FixedStates holds the states of other items")
        return self.states, self.mask


def pipeline_step(pair, translator, items, p: dict):
    """The pipeline's trainer of ``translator`` on ``items`` (``recipe.translator_trainer``: its
    loss, optimizer, clip and schedule) and the step to time: ``loop.step`` on the whole ``items``
    with the KL term on (step ``warmup_steps + 1``, as in most of a run); the step returns its
    gradient norm. A non-finite loss is the loop's stop rule's (``trainer.stop_rules.nonfinite()``)."""
    from ablate.bridge.training import recipe as brecipe
    from ablate.core.training import loop

    trainer = brecipe.translator_trainer(
        pair, translator, items, bridge_params.check(bridge_params.resolve(p)), "bench"
    )

    def step():
        trainer.state.step = p["warmup_steps"]  # loop.step trains step state.step + 1
        return loop.step(trainer, items)

    return trainer, step


def pipeline_variant(s, name: str, cached: bool, models_, device, steps: int, warmup: int) -> dict:
    """The pipeline's loop step end to end: live source and teacher (the seed's path) or both read
    from the pair's caches (``Pair.cache``, ``Pair.teacher_cache``: :class:`FixedStates` here)."""
    from ablate.core.training import speed

    source, target = models_
    B = s.p["batch_size"]
    pair, items = pipeline_pair(s, models_, B)
    tr = build_translator(s, source, target, device).train()
    speed.tf32_matmuls(device)  # as entries.train_entry
    if cached:
        pair.cache = FixedStates(items, *pair.source_states(items))
        pair.teacher_cache = FixedStates(items, *pair.teacher_states(items))
    trainer, step = pipeline_step(pair, tr, items, s.p)
    for _ in range(warmup):
        step()
    reset_peak(device)
    sync(device)
    trainer.stop_rules.nonfinite()  # the warm-up steps' losses read: the timed ones alone below
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    finite = trainer.stop_rules.nonfinite() is None
    dt = (time.perf_counter() - t0) / steps
    last = trainer.spec.recipe.log_parts()  # the last step's loss and parts (TranslatorRecipe)
    # Pair.loss's own count (= B x cost.example_tokens)
    tokens = int(trainer.spec.recipe.tokens({}))  # on the device until read here
    return dict(
        section="train",
        variant=name,
        batch_per_gpu=B,
        s_per_step=dt,
        tokens_per_step=tokens,
        tokens_per_s=tokens / dt,
        peak_mem_gb=peak_gb(device),
        loss=last.get("loss", float("nan")),
        finite=finite,
        parts={k: v for k, v in last.items() if k != "loss"},
    )
