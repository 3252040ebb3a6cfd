"""Generation-engine benchmark (issue 28): eager generate vs ablate.core.models.generation, one
bridged evaluation through the engine, and frozen-state extraction, at the real shape (random
weights).

    PYTHONPATH=src python bench/bench_generate.py --shape tiny --out bench/results/generate_cpu_tiny.md
    PYTHONPATH=src python bench/bench_generate.py --shape real --out bench/results/generate_h100.md

Real shape: the target Llama-3.1-8B-Instruct and the source Mistral-7B-Instruct-v0.3 as their
config.json shapes in config/gpu_measurements.yaml, built with random weights on the GPU in bf16
(bench/bridge_work.py, as bench/bench_bridge.py builds them); the translator and evaluation
settings of config/latentwire.yaml's ``bridge.defaults``. ``--shape tiny``: two-layer models on
CPU in seconds, to check the script (its numbers say nothing about a GPU).

Sections (each timed after an untimed warm-up call of the same shape: steady state, the decode
step compiled on a GPU):
  decode   a ``--prompt``-token prompt (150) fed as ``inputs_embeds``, greedy, ``--new`` new tokens
           (128), EOS off, hygiene as the config: ``eager`` = one ``model.generate`` call with
           the dynamic cache (the path before the engine, 9d9d427) vs ``engine`` =
           ``generation.generate`` (static cache + compiled decode step on a GPU), at each batch
           of ``--batches`` (a batch that runs out of memory is reported, not fatal)
  eval     one bridged evaluation: ``--eval-items`` (500) items through source forward +
           translator + [BOS] K soft cue, decoded by the engine in batches of eval_batch_size,
           ``max_new_tokens`` (256) each, EOS off: seconds for the whole evaluation
  states   frozen source-state extraction (ablate.bridge.states.write, files included) of
           ``--state-items`` items of ``--prompt`` tokens in batches of eval_batch_size: tokens/s

It prints a markdown table per section and the rows for config/gpu_measurements.yaml (their
source names the output file and this command), and writes the same text to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch
import yaml
from bench_bridge import machine, table
from bridge_work import (
    CPU_FLAG,
    StubTokenizer,
    build_lm,
    build_translator,
    n_params,
    peak_gb,
    reset_peak,
    setup,
    sync,
)

from ablate.bridge import evaluate, states
from ablate.bridge import params as bridge_params
from ablate.core.models import generation

BATCHES = (1, 16, 64, 128, 256)


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=("real", "tiny"), default="real")
    ap.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    ap.add_argument("--prompt", type=int, default=150, help="prompt tokens (as embeddings)")
    ap.add_argument("--new", type=int, default=128, help="new tokens per row (decode section)")
    ap.add_argument("--eval-items", type=int, default=500)
    ap.add_argument("--state-items", type=int, default=1000)
    ap.add_argument("--skip", nargs="*", default=[], choices=("decode", "eval", "states"))
    ap.add_argument("--out", help="write the markdown report here too")
    return ap.parse_args(argv)


def timed(device, fn):
    """(seconds, result, peak GB) of ``fn()`` after a warm-up call of the same shape."""
    fn()
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out, peak_gb(device)


def decode_rows(a, s, target, device) -> list[dict]:
    """eager (one generate call, dynamic cache) vs the engine, per batch size."""
    p = {**s.p, "max_new_tokens": a.new}
    d = target.config.hidden_size
    rows = []
    for b in a.batches:
        g = torch.Generator().manual_seed(b)
        embeds = (torch.randn(b, a.prompt, d, generator=g) * 0.02).to(device, target.dtype)
        mask = torch.ones(b, a.prompt, dtype=torch.long, device=device)
        prompts = list(embeds.unbind(0))
        engine = eager = _dec(p, b)  # eager: one generate_batch call without the static cache
        modes = {
            "eager": lambda e=embeds, m=mask, d=eager: generation.generate_batch(
                target, e, m, d
            ).numel(),
            "engine": lambda x=prompts, d=engine: sum(
                len(r) for r in generation.generate(target, x, d)
            ),
        }
        for mode, fn in modes.items():
            row = dict(section="decode", mode=mode, batch=b, prompt=a.prompt, new=a.new)
            try:
                sec, tokens, peak = timed(device, fn)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                rows.append({**row, "note": "does not fit"})
                continue
            rows.append({**row, "s": sec, "new_tokens": tokens, "tokens_per_s": tokens / sec,
                         "ms_per_step": 1e3 * sec / a.new, "peak_mem_gb": peak})  # fmt: skip
            print(f"[decode] {mode} batch {b}: {tokens / sec:.1f} tok/s", flush=True)
    return rows


def _dec(p, batch: int) -> generation.Decoding:
    typed = bridge_params.check(bridge_params.resolve(p))
    return evaluate.decoding(typed, StubTokenizer(), batch_size=batch)


def source_batch(source, n: int, length: int, device, seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, source.config.vocab_size, (n, length), generator=g).to(device)
    return ids, torch.ones(n, length, dtype=torch.long, device=device)


@torch.no_grad()
def eval_row(a, s, models_, device) -> dict:
    """One bridged evaluation of ``--eval-items`` items through the engine."""
    source, target = models_
    p, bs = s.p, s.p["eval_batch_size"]
    tr = build_translator(s, source, target, device).eval()
    emb = target.get_input_embeddings()
    bos, cue = emb(torch.tensor([1], device=device)), emb(torch.tensor([2, 3, 4], device=device))

    def latent_rows(n: int) -> list[torch.Tensor]:
        rows = []
        for i in range(0, n, bs):
            ids, mask = source_batch(source, min(bs, n - i), s.n.source, device, i)
            h = source.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
            soft = tr(h, mask).to(emb.weight.dtype)
            rows += [torch.cat([bos, x, cue]) for x in soft]
        return rows

    def run(n: int) -> int:
        return sum(len(r) for r in generation.generate(target, latent_rows(n), _dec(p, bs)))

    run(min(bs, a.eval_items))  # warm-up: the same batch and cache length
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    tokens = run(a.eval_items)
    sync(device)
    sec = time.perf_counter() - t0
    print(f"[eval] {a.eval_items} items x {p['max_new_tokens']}: {sec:.1f} s", flush=True)
    return dict(section="eval", items=a.eval_items, batch=bs, new=p["max_new_tokens"], s=sec,
                new_tokens=tokens, tokens_per_s=tokens / sec, peak_mem_gb=peak_gb(device))  # fmt: skip


@torch.no_grad()
def states_row(a, s, model, device, length: int) -> dict:
    """Frozen states of ``--state-items`` items of ``length`` tokens written by
    ablate.bridge.states.write (the last hidden states of ``model``, as the caches store)."""
    bs = s.p["eval_batch_size"]
    items = [{"id": f"i{k}"} for k in range(a.state_items)]

    def states_of(chunk):
        ids, mask = source_batch(model, len(chunk), length, device, len(chunk))
        return model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state, mask

    with tempfile.TemporaryDirectory() as tmp:
        states.write(states_of, items[:bs], f"{tmp}/warm", bs)
        reset_peak(device)
        sync(device)
        t0 = time.perf_counter()
        index = states.write(states_of, items, f"{tmp}/states", bs)
        sec = time.perf_counter() - t0
    tokens = sum(index["length"])
    print(f"[states] {tokens} tokens in {sec:.1f} s", flush=True)
    return dict(section="states", items=a.state_items, batch=bs, prompt=length, s=sec,
                tokens=tokens, tokens_per_s=tokens / sec, peak_mem_gb=peak_gb(device))  # fmt: skip


def measurement_rows(a, rows, mach, sizes) -> list[dict]:
    """Rows for config/gpu_measurements.yaml ``measurements:``: the engine's decoding per batch
    (``generate``, the pair's size: what ablate.bridge.plan gives a bridge job; the bridged
    evaluation's own row for its batch) and the state extraction (``eval``, one model's size)."""
    flag = f"{CPU_FLAG}; " if mach["gpu"] == "cpu" else ""
    where = f"{a.out or 'stdout'} from `{a.command}` on 1x {mach['device']}"
    pair = sizes["source"] + sizes["target"] + sizes["translator"]
    out, policies = [], set()
    # the bridged evaluation's own row first: it stands for its batch, not the decode section's
    for r in sorted(rows, key=lambda r: r["section"] != "eval"):
        if "tokens_per_s" not in r or r.get("mode") == "eager":
            continue
        if r["section"] == "states":
            what = f"{r['what']} state extraction, batch {r['batch']}"
            params = sizes["source" if r["what"] == "source" else "target"]
            kind, policy = "eval", None
        else:
            what = (
                f"bridged evaluation, {r['items']} items x {r['new']} new tokens"
                if r["section"] == "eval"
                else f"engine decode, {r['prompt']}-token prompt, {r['new']} new tokens"
            )
            kind, policy, params = "generate", f"batch{r['batch']}", pair
            if policy in policies:
                continue
        policies.add(policy)
        row = dict(kind=kind, policy=policy, gpu=mach["gpu"], params=params,
                   tokens_per_s=round(r["tokens_per_s"], 1),
                   source=f"{flag}{what}: {r['tokens_per_s']:.1f} tok/s ({where})")  # fmt: skip
        out.append({k: v for k, v in row.items() if v is not None})
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = parse(argv)
    a.command = " ".join(["python bench/bench_generate.py", *argv])
    real = a.shape == "real"
    if real and not torch.cuda.is_available():
        sys.exit("--shape real needs a CUDA GPU")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    s = setup(a.shape)
    dtype = torch.bfloat16 if real else torch.float32
    source = build_lm(s.cfgs["source"], dtype, device)
    target = build_lm(s.cfgs["target"], dtype, device)
    sizes = dict(source=n_params(source), target=n_params(target),
                 translator=n_params(build_translator(s, source, target, "cpu")))  # fmt: skip
    mach = machine(device, 1)
    rows = [] if "decode" in a.skip else decode_rows(a, s, target, device)
    if "eval" not in a.skip:
        rows.append(eval_row(a, s, (source, target), device))
    if "states" not in a.skip:
        for what, model, length in (("source", source, a.prompt), ("teacher", target, None)):
            # the KL teacher reads prompt + answer
            n = length or a.prompt + s.n.answer
            rows.append({**states_row(a, s, model, device, n), "what": what})
    report = [
        f"# bench_generate --shape {a.shape}: {mach['device']}, torch {mach['torch']}; target "
        f"{s.names['target']} {sizes['target'] / 1e9:.3g} B, source {s.names['source']} "
        f"{sizes['source'] / 1e9:.3g} B, {str(dtype).removeprefix('torch.')}, hygiene "
        f"{s.p['hygiene']}" + (f"\n\n{CPU_FLAG}" if not real else "")
    ]
    cols = {
        "decode": ["mode", "batch", "prompt", "new", "s", "tokens_per_s", "ms_per_step",
                   "peak_mem_gb", "note"],
        "eval": ["items", "batch", "new", "s", "new_tokens", "tokens_per_s", "peak_mem_gb"],
        "states": ["what", "items", "batch", "s", "tokens", "tokens_per_s", "peak_mem_gb"],
    }  # fmt: skip
    for sec, cs in cols.items():
        rs = [r for r in rows if r["section"] == sec]
        if rs:
            report.append(f"## {sec}\n\n" + table(rs, cs))
    meas = measurement_rows(a, rows, mach, sizes)
    dump = yaml.safe_dump(meas, sort_keys=False, width=200, default_flow_style=None)
    report.append("## for config/gpu_measurements.yaml (measurements:)\n\n```yaml\n" + dump + "```")
    text = "\n\n".join(report) + "\n"
    print(text, flush=True)
    if a.out:
        from ablate.core.outputs import io

        io.atomic_write(a.out, lambda tmp: tmp.write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
