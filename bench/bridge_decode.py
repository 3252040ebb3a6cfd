"""The bridge benchmark's decoding work (bench/bench_bridge.py runs it): one bridged-evaluation
batch, the five baselines of ablate.bridge.infer per sample, and the KV-cache check."""

from __future__ import annotations

import time

import torch
from bridge_work import (
    StubTokenizer,
    build_translator,
    make_batch,
    peak_gb,
    reset_peak,
    source_states,
    sync,
)

from ablate.bridge import evaluate, models
from ablate.bridge import params as bridge_params
from ablate.bridge.infer import BASELINES
from ablate.core.models import generation


# --- evaluation, inference, KV ------------------------------------------------------------------
def gen(model, embeds, p):
    """New tokens of the engine's greedy decoding of ``embeds`` [B, T, d] (one batch)."""
    typed = bridge_params.check(bridge_params.resolve(p))
    dec = evaluate.decoding(typed, StubTokenizer(), batch_size=embeds.shape[0])
    return sum(len(r) for r in generation.generate(model, list(embeds.unbind(0)), dec))


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
