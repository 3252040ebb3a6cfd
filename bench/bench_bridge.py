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

Training-step variants (one GPU each; the same loss as ablate.bridge.pair.Pair.loss: answer NLL
after BOS + K soft + cue, KL to the text-prompted target over the first kl_positions answer
positions, InfoNCE and prompt-alignment MSE of pooled vectors):
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
  pipeline:seed        ablate.bridge.train.train_step itself (Pair.loss over synthetic items of the
                       same lengths), live source and teacher: end to end, no phases
  pipeline:cached      the same with the cached source states and teacher rows (bscale's caches):
                       the pipeline's recipe, the row the planner's measurement is made from
Phases are timed with a device sync around each, so the phase sum is slightly above the step.
--ddp (under torchrun): the cached+fused+bf16 step on each rank alone, then with the translator in
DistributedDataParallel (frozen models replicated): scaling efficiency = DDP tokens/s / (N x alone).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
import yaml

from ablate.bridge import cost, evaluate, models
from ablate.bridge import params as bridge_params
from ablate.bridge.infer import BASELINES
from ablate.bridge.translator import ARCH_KEYS, BottleneckedGatedTranslator, median_row_rms

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


#: The pipeline's train.train_step timed end to end (no phases): cross-checks the tensor-level step.
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
    """What evaluate.generate_from_embeds needs from a tokenizer; no EOS: every answer is long."""

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
        n = cost.Lengths.of(ref["bridge_lengths"][p["dataset"]], p)
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
    torch.manual_seed(s.p["seed"])
    return BottleneckedGatedTranslator(
        d_src=source.config.hidden_size,
        d_tgt=target.config.hidden_size,
        target_rms=median_row_rms(target.get_input_embeddings().weight),
        **{k: s.p[k] for k in ARCH_KEYS},
    ).to(device)


def n_params(m) -> int:
    return sum(t.numel() for t in m.parameters())


# --- timing -------------------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Phases:
    def __init__(self, device):
        self.device, self.t = device, {}

    @contextlib.contextmanager
    def __call__(self, name):
        sync(self.device)
        t0 = time.perf_counter()
        yield
        sync(self.device)
        self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0


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


@torch.no_grad()
def teacher_states(s, target, b):
    """The text-prompted target's last hidden states at the first kl_positions answer positions."""
    k = min(s.p["kl_positions"], s.n.answer)
    h = target.base_model(input_ids=torch.cat([b.prompt, b.answer], 1)).last_hidden_state
    return h[:, s.n.prompt - 1 : s.n.prompt - 1 + k]


@torch.no_grad()
def teacher_logprobs(target, rows):
    """log p_text from those states (lm_head + log_softmax: cheap next to the forward)."""
    return target.get_output_embeddings()(rows).float().log_softmax(-1)


def train_step(s, v, models_, tr, opt, b, cache, ph: Phases) -> torch.Tensor:
    source, target = models_
    p, n = s.p, s.n
    with ph("source_forward"):
        h = cache["h"] if v.get("cached") else source_states(source, b)
    with ph("teacher_forward"):
        rows = cache["teacher"] if v.get("teacher_cached") else teacher_states(s, target, b)
        teacher = teacher_logprobs(target, rows)
    with ph("translator_forward"):
        with torch.autocast(b.src.device.type, torch.bfloat16, enabled=bool(v.get("autocast"))):
            soft = tr(h, b.src_mask)
    with ph("target_forward_backward"):
        emb = target.get_input_embeddings()
        dt = emb.weight.dtype
        embeds = torch.cat(
            [
                emb(b.bos).expand(b.B, -1, -1),
                soft.to(dt),
                emb(b.cue).expand(b.B, -1, -1),
                emb(b.answer),
            ],
            1,
        )
        hs = target.base_model(inputs_embeds=embeds).last_hidden_state
        prefix = cost.latent_len(p["K"], n)
        student = target.get_output_embeddings()(hs[:, prefix - 1 : prefix - 1 + n.answer]).float()
        loss = F.cross_entropy(student.transpose(1, 2), b.answer)
        k = teacher.shape[1]
        log_s = student[:, :k].log_softmax(-1)
        loss = loss + p["kl_weight"] * (teacher.exp() * (teacher - log_s)).sum(-1).mean()
        pooled_soft = soft.float().mean(1)
        pooled_prompt = emb(b.prompt).float().mean(1)
        a, c = F.normalize(pooled_soft, dim=-1), F.normalize(pooled_prompt, dim=-1)
        nce = F.cross_entropy(
            a @ c.T / p["infonce_temperature"], torch.arange(b.B, device=a.device)
        )
        loss = loss + p["infonce_weight"] * nce
        loss = loss + p["prompt_align_weight"] * F.mse_loss(pooled_soft, pooled_prompt)
        loss.backward()
    with ph("optimizer"):
        torch.nn.utils.clip_grad_norm_(tr.parameters(), p["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
    return loss.detach()


def run_variant(s, v, models_, device, steps: int, warmup: int, ddp: bool = False) -> dict:
    source, target = models_
    B = v.get("batch", s.p["batch_size"])
    g = torch.Generator().manual_seed(1)
    b = make_batch(s, B, source, target, device, g)
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
    cache = {"h": source_states(source, b), "teacher": teacher_states(s, target, b)}
    if v.get("gradckpt"):
        target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        target.train()  # HF checkpoints only in training mode (the target has no dropout)
    try:
        for _ in range(warmup):
            train_step(s, v, models_, module, opt, b, cache, Phases(device))
        reset_peak(device)
        ph = Phases(device)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = train_step(s, v, models_, module, opt, b, cache, ph)
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
        **{f"{k}_s": t / steps for k, t in ph.t.items()},
    )


# --- the pipeline's own step (ablate.bridge.train.train_step) ------------------------------------
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
    """ablate.bridge.pair.Pair over the benchmark's models and B synthetic GSM8K-shaped items."""
    from ablate.bridge import world
    from ablate.bridge.pair import Pair

    source, target = models_
    n = s.n
    items = [{"id": f"b{i}", "question": f"q{i}", "answer": f"a{i}\n#### {i}"} for i in range(B)]
    answers = {world.answer_text("gsm8k", it): n.answer - 1 for it in items}  # + EOS
    src_tok = LengthTokenizer(source.config.vocab_size, {}, n.source - 1)  # + BOS
    tgt_tok = LengthTokenizer(
        target.config.vocab_size, {world.ANSWER_CUE: n.cue, **answers}, n.prompt - 1
    )
    return Pair(source, src_tok, target, tgt_tok, "gsm8k", s.p), items


def pipeline_variant(s, name: str, cached: bool, models_, device, steps: int, warmup: int) -> dict:
    """train.train_step end to end: live source and teacher (the seed's path) or both cached."""
    from ablate.bridge import train as btrain

    source, target = models_
    B = s.p["batch_size"]
    pair, items = pipeline_pair(s, models_, B)
    tr = build_translator(s, source, target, device).train()
    opt, sched = btrain.optimizer(tr, s.p)
    states = pair.source_states(items) if cached else None
    teacher = pair.teacher_states(items)[0] if cached else None
    at = s.p["warmup_steps"] + 1  # the KL term on, as in most of a run
    for _ in range(warmup):
        btrain.train_step(pair, tr, opt, sched, items, at, s.p["grad_clip"], states, teacher)
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        st = btrain.train_step(pair, tr, opt, sched, items, at, s.p["grad_clip"], states, teacher)
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    return dict(
        section="train",
        variant=name,
        batch_per_gpu=B,
        s_per_step=dt,
        tokens_per_step=st.tokens,  # Pair.loss's own count (= B x cost.example_tokens)
        tokens_per_s=st.tokens / dt,
        peak_mem_gb=peak_gb(device),
        loss=st.loss,
        finite=st.grad_norm is not None,
        parts=st.parts,
    )


# --- evaluation, inference, KV ------------------------------------------------------------------
def gen(model, embeds, p):
    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    _, n_out = evaluate.generate_from_embeds(model, StubTokenizer(), embeds, mask, p)
    return sum(n_out)


def bridged_eval(s, models_, device) -> dict:
    """One evaluation batch of training: source -> translator -> generate eval_batch_size answers."""
    source, target = models_
    p, B = s.p, s.p["eval_batch_size"]
    b = make_batch(s, B, source, target, device, torch.Generator().manual_seed(2))
    tr = build_translator(s, source, target, device).eval()
    emb = target.get_input_embeddings()
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        soft = tr(source_states(source, b), b.src_mask).to(emb.weight.dtype)
        embeds = torch.cat([emb(b.bos).expand(B, -1, -1), soft, emb(b.cue).expand(B, -1, -1)], 1)
        n_out = gen(target, embeds, p)
    sync(device)
    dt = time.perf_counter() - t0
    return dict(
        section="eval",
        variant=f"batch{B}",
        batch=B,
        s_per_batch=dt,
        generated_tokens=n_out,
        generated_tokens_per_s=n_out / dt,
        peak_mem_gb=peak_gb(device),
        hygiene=p["hygiene"],
    )


def baseline(name: str, s, models_, tr, b, device) -> tuple[str, int, int, dict]:
    """One baseline of ablate.bridge.infer on one sample: (model, input tokens, new tokens, extra)."""
    source, target = models_
    p, n = s.p, s.n
    se, te = source.get_input_embeddings(), target.get_input_embeddings()
    cue = te(b.cue)[None]
    if name == "source_alone":
        return "source", n.source, gen(source, se(b.src), p), {}
    if name == "target_alone":
        return "target", n.prompt, gen(target, te(b.prompt), p), {}
    if name == "latent":  # source forward + translator + [BOS] K soft "Answer:" -> target
        soft = tr(source_states(source, b), b.src_mask).to(te.weight.dtype)
        embeds = torch.cat([te(b.bos)[None], soft, cue], 1)
        return "target", embeds.shape[1], gen(target, embeds, p), {}
    if name == "token_budget":  # the first K prompt tokens: the latent input's length
        embeds = torch.cat([te(b.bos)[None], te(b.prompt[:, : p["K"]]), cue], 1)
        return "target", embeds.shape[1], gen(target, embeds, p), {}
    if name == "cascade":  # the source's answer handed to the target after the prompt
        src_out = gen(source, se(b.src), p)
        handed = torch.randint(3, target.config.vocab_size, (1, src_out + n.cue), device=device)
        embeds = torch.cat([te(b.prompt), cue, te(handed)], 1)
        return "target", embeds.shape[1], gen(target, embeds, p), {"source_output_tokens": src_out}
    raise ValueError(f"unknown baseline {name!r}")


def infer_rows(s, models_, device, n_samples: int) -> list[dict]:
    """The five baselines of ablate.bridge.infer, batch 1, timed end to end per sample."""
    source, target = models_
    tr = build_translator(s, source, target, device).eval()
    kv = {
        role: models.kv_cache_mb_per_token(m.config, "bfloat16")
        for role, m in zip(("source", "target"), models_)
    }
    rows = []
    for i in range(n_samples):
        b = make_batch(s, 1, source, target, device, torch.Generator().manual_seed(10 + i))
        for name in BASELINES:  # the pipeline's baselines, in its order
            reset_peak(device)
            sync(device)
            t0 = time.perf_counter()
            with torch.no_grad():
                model, n_in, n_out, extra = baseline(name, s, models_, tr, b, device)
            sync(device)
            dt = time.perf_counter() - t0
            rows.append(
                dict(
                    section="infer",
                    variant=name,
                    sample=i,
                    model=model,
                    input_tokens=n_in,
                    output_tokens=n_out,
                    generated_tokens=n_out + extra.get("source_output_tokens", 0),
                    latency_s=dt,
                    kv_cache_mb=kv[model] * (n_in + n_out),
                    peak_mem_gb=peak_gb(device),
                    **extra,
                )
            )
    return rows


def cache_bytes(cache) -> int:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return sum(x.keys.nbytes + x.values.nbytes for x in layers)
    return sum(k.nbytes + v.nbytes for k, v in zip(cache.key_cache, cache.value_cache))


def kv_rows(models_, device, tokens: int) -> list[dict]:
    """KV-cache MiB/token from the config (models.kv_cache_mb_per_token) vs the cache tensors'
    bytes and vs torch.cuda memory held after a prefill of ``tokens`` tokens."""
    rows = []
    for role, m in zip(("source", "target"), models_):
        ids = torch.randint(3, m.config.vocab_size, (1, tokens), device=device)
        sync(device)
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
        reset_peak(device)
        with torch.no_grad():
            out = m(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        del out
        sync(device)
        held = None if before is None else (torch.cuda.memory_allocated(device) - before) / 2**20
        peak = (
            None if before is None else (torch.cuda.max_memory_allocated(device) - before) / 2**20
        )
        formula = models.kv_cache_mb_per_token(m.config, m.dtype) * tokens
        rows.append(
            dict(
                section="kv",
                variant=role,
                tokens=tokens,
                formula_mb=formula,
                cache_tensors_mb=cache_bytes(cache) / 2**20,
                cuda_held_mb=held,
                cuda_peak_over_weights_mb=peak,
                held_over_formula=None if held is None else held / formula,
            )
        )
        del cache
    return rows


# --- reporting ----------------------------------------------------------------------------------
def machine(device, world: int) -> dict:
    from ablate.core.planner.inputs import load_reference

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        gpu = load_reference(MEASUREMENTS).canonical_gpu(name) or name
    else:
        from ablate.core.provenance import cpu_info

        model = cpu_info()["cpu_model"] or "cpu"
        name, gpu = f"{model} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)", "cpu"
    return dict(device=name, gpu=gpu, gpus=world, torch=torch.__version__)


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(x):
        return f"{x:.4g}" if isinstance(x, float) else ("-" if x is None else str(x))

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def measurement_rows(s, rows: list[dict], mach: dict, total_params: int) -> list[dict]:
    """Rows for config/gpu_measurements.yaml `measurements:` (the planner's bridge inputs)."""
    flag = f"{CPU_FLAG}; " if mach["gpu"] == "cpu" else ""
    where = f"bench/bench_bridge.py --shape {s.shape} on {mach['gpus']}x {mach['device']}"
    out = []
    train = {r["variant"]: r for r in rows if r["section"] == "train" and "s_per_step" in r}
    # the pipeline's own step with both frozen caches (what ablate.bridge.plan forecasts)
    name = next((k for k in ("pipeline:cached", "cached") if k in train), None)
    if name:
        r = train[name]
        out.append(
            dict(
                kind="train",
                gpu=mach["gpu"],
                params=total_params,
                optim="adamw_torch",
                tokens_per_s=round(r["tokens_per_s"], 1),
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
    total = n_params(source) + n_params(target) + tr_params
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
                "translator_forward",
                "target_forward_backward",
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
    meas = measurement_rows(s, rows, mach, total) if not a.ddp else []
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
        from ablate.core import io

        io.write_json(a.out, result)
        log(f"wrote {a.out}")
    log(f"wall {result['wall_s']:.1f} s")
    if a.ddp:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
