"""Scoring throughput: stage-1 evaluation workload on the Ministral-3-3B text shape (GPU).

Workload: 5 tasks x 500 docs shaped like hellaswag (4 endings), piqa (2 solutions),
arc_easy / arc_challenge (4 short answers) and winogrande (2 contexts, one shared continuation):
8000 (context, continuation) requests of ~100 tokens, random tokens, random-init weights, bf16.

Paths compared (same requests):
  seed         one full forward per sequence + full-vocab fp32 log-softmax (timed on a subset,
               extrapolated); also the reference for the score differences
  naive-b64    stock-lm-eval style: length-sorted right-padded batches of 64, no mask, full
               logits, full-vocab fp32 log-softmax (causal only)
  scorer       ablate.mask.scoring.score_requests, per policy, with and without shared contexts

usage: python bench/bench_eval.py [--docs 500] [--subset-docs 80] [--tiny]
Prints a markdown table; --tiny runs a small shape on CPU to check the script.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from references import score_naive

from ablate.mask.masks import POLICIES
from ablate.mask.scoring import prepare, score_requests
from ablate.mask.tiny import MINISTRAL3_3B

# Ministral-3-3B text model (findings §3): 3.43 B parameters with tied embeddings.
SHAPE_3B = dict(MINISTRAL3_3B, max_position_embeddings=4096)
SHAPE_TINY = dict(
    SHAPE_3B,
    hidden_size=64,
    intermediate_size=192,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=4096,
)

# task: (choices, context length range, continuation length range, contexts shared?)
TASK_SHAPES = {
    "hellaswag": (4, (60, 90), (15, 30), True),
    "piqa": (2, (50, 80), (20, 40), True),
    "arc_easy": (4, (80, 100), (3, 10), True),
    "arc_challenge": (4, (80, 100), (3, 10), True),
    "winogrande": (2, (70, 90), (8, 15), False),  # partial scoring: 2 contexts, 1 continuation
}


def workload(docs_per_task: int, vocab: int, seed: int = 0):
    """Requests, and per doc the indices of its requests (its choices)."""
    rng = random.Random(seed)
    tok = lambda n: [rng.randrange(1000, vocab) for _ in range(n)]  # noqa: E731
    reqs, docs = [], []
    for n_choices, (c0, c1), (k0, k1), shared in TASK_SHAPES.values():
        for _ in range(docs_per_task):
            docs.append(list(range(len(reqs), len(reqs) + n_choices)))
            if shared:
                ctx = tok(rng.randint(c0, c1))
                reqs += [(ctx, tok(rng.randint(k0, k1))) for _ in range(n_choices)]
            else:
                cont = tok(rng.randint(k0, k1))
                reqs += [(tok(rng.randint(c0, c1)), cont) for _ in range(n_choices)]
    return reqs, docs


def build_model(shape: dict, device: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, Ministral3Config

    config = Ministral3Config(**shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def naive_batched(model, requests, max_length: int, batch: int = 64):
    """Stock lm-eval's loop: right-pad with 0, no attention mask, full fp32 log-softmax."""
    device = next(model.parameters()).device
    rows = sorted(prepare(requests, max_length), key=lambda r: -len(r.inp))
    out = [None] * len(rows)
    with torch.inference_mode():
        for s in range(0, len(rows), batch):
            chunk = rows[s : s + batch]
            T = len(chunk[0].inp)
            ids = torch.zeros(len(chunk), T, dtype=torch.long)
            for b, r in enumerate(chunk):
                ids[b, : len(r.inp)] = torch.tensor(r.inp)
            logp = torch.log_softmax(model(ids.to(device)).logits, dim=-1, dtype=torch.float32)
            for b, r in enumerate(chunk):
                pos = torch.arange(r.n_prompt - 1, len(r.inp), device=device)
                tgt = torch.tensor(r.targets, device=device)
                lp = logp[b, pos]
                out[r.index] = (
                    float(lp.gather(1, tgt[:, None]).sum()),
                    bool((lp.argmax(-1) == tgt).all()),
                )
    return out


def timed(fn, device: str):
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    result = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - t


def choice_flips(scores, ref, docs, reqs):
    """Docs whose predicted choice (argmax of sum log-prob, and of per-token mean) differs."""
    flips = [0, 0]
    for doc in docs:
        a = [scores[i][0] for i in doc]
        b = [ref[i][0] for i in doc]
        n = [len(reqs[i][1]) for i in doc]
        argmax = lambda xs: max(range(len(xs)), key=xs.__getitem__)  # noqa: E731
        flips[0] += argmax(a) != argmax(b)
        flips[1] += argmax([x / k for x, k in zip(a, n)]) != argmax([x / k for x, k in zip(b, n)])
    return flips


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=500, help="docs per task (500 = stage 1)")
    ap.add_argument("--subset-docs", type=int, default=80, help="docs for the seed path")
    ap.add_argument("--max-batch-tokens", type=int, default=65536)
    ap.add_argument("--max-batch-rows", type=int, default=1024)
    ap.add_argument("--sweep", default="16384,32768", help="extra token budgets to time")
    ap.add_argument("--fp32-docs", type=int, default=24, help="docs for the fp32 equality check")
    ap.add_argument("--tiny", action="store_true", help="small shape on CPU (script check)")
    a = ap.parse_args(argv)

    device = "cpu" if a.tiny or not torch.cuda.is_available() else "cuda"
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    shape = SHAPE_TINY if a.tiny else SHAPE_3B
    t0 = time.perf_counter()
    model = build_model(shape, device, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    print(
        f"model: {n_params / 1e9:.2f} B params, {dtype}, {gpu}, "
        f"built in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    reqs, docs = workload(a.docs, shape["vocab_size"])
    max_length = shape["max_position_embeddings"]
    n_tok = sum(len(c) + len(k) - 1 for c, k in reqs)
    print(
        f"workload: {len(reqs)} requests in {len(docs)} docs, {n_tok} input tokens "
        f"({n_tok / len(reqs):.1f}/request)",
        flush=True,
    )
    sub_docs = random.Random(1).sample(docs, min(a.subset_docs, len(docs)))
    sub_idx = [i for d in sub_docs for i in d]
    subset = [reqs[i] for i in sub_idx]
    kw = dict(max_length=max_length, max_batch_rows=a.max_batch_rows)

    # Warm-up (kernel selection, allocator) on a slice, not timed.
    for policy in POLICIES:
        score_requests(model, reqs[:512], policy, max_batch_tokens=a.max_batch_tokens, **kw)

    rows = []

    def record(path, policy, budget, n, secs, scores=None, ref=None):
        diff = flips = None
        if scores is not None and ref is not None:
            full_ref = dict(zip(sub_idx, ref))
            diff = max(abs(scores[i][0] - full_ref[i][0]) for i in sub_idx)
            local = {i: scores[i] for i in sub_idx}
            flips = choice_flips(local, full_ref, [d for d in sub_docs], reqs)
        est = secs * len(reqs) / n
        rows.append((path, policy, budget, n, secs, est, diff, flips))
        print(
            f"  {path:<22} {policy:<14} {budget!s:<6} n={n:<5} {secs:8.2f}s  "
            f"all {est:8.2f}s"
            + (f"  max|dlogp| {diff:.2e} choice flips {flips}" if diff is not None else ""),
            flush=True,
        )

    refs = {}
    for policy in POLICIES:
        refs[policy], secs = timed(
            lambda policy=policy: score_naive(model, subset, policy, max_length=max_length), device
        )
        record("seed (1 seq/forward)", policy, "", len(subset), secs)
    scores, secs = timed(lambda: naive_batched(model, reqs, max_length), device)
    record("naive-b64 fp32 lsm", "causal", 64, len(reqs), secs, scores, refs["causal"])
    for policy in POLICIES:
        for share in (False, True) if policy != "prefill_bidir" else (False,):
            scores, secs = timed(
                lambda policy=policy, share=share: score_requests(
                    model,
                    reqs,
                    policy,
                    share_contexts=share,
                    max_batch_tokens=a.max_batch_tokens,
                    **kw,
                ),
                device,
            )
            record(
                "scorer" + (" shared ctx" if share else ""),
                policy,
                a.max_batch_tokens,
                len(reqs),
                secs,
                scores,
                refs[policy],
            )
    for budget in [int(b) for b in a.sweep.split(",") if b]:
        for policy, share in (("causal", True), ("prefill_bidir", False)):
            scores, secs = timed(
                lambda policy=policy, share=share, budget=budget: score_requests(
                    model, reqs, policy, share_contexts=share, max_batch_tokens=budget, **kw
                ),
                device,
            )
            record(
                "scorer" + (" shared ctx" if share else ""),
                policy,
                budget,
                len(reqs),
                secs,
                scores,
                refs[policy],
            )
    if device == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")

    # fp32: the scorer computes the same function as the seed path (bf16 differences above
    # are batching noise: the naive-b64 row shows the same size).
    fp32 = []
    if a.fp32_docs:
        del model
        model32 = build_model(shape, device, torch.float32)
        f_docs = sub_docs[: a.fp32_docs]
        f_idx = [i for d in f_docs for i in d]
        f_reqs = [reqs[i] for i in f_idx]
        for policy in POLICIES:
            ref = score_naive(model32, f_reqs, policy, max_length=max_length)
            for share in (False, True) if policy != "prefill_bidir" else (False,):
                got = score_requests(
                    model32,
                    f_reqs,
                    policy,
                    share_contexts=share,
                    max_batch_tokens=a.max_batch_tokens,
                    **kw,
                )
                fp32.append(
                    (
                        policy,
                        share,
                        len(f_reqs),
                        max(abs(x[0] - y[0]) for x, y in zip(got, ref)),
                        sum(x[1] != y[1] for x, y in zip(got, ref)),
                    )
                )
                print(
                    f"  fp32 {policy:<14} shared={share!s:<5} n={len(f_reqs)} "
                    f"max|dlogp| {fp32[-1][3]:.2e} greedy flips {fp32[-1][4]}",
                    flush=True,
                )

    print(
        f"\n{len(reqs)} requests / {len(docs)} docs ({n_tok} tokens), {gpu}, {dtype}; "
        f"seed path timed on {len(subset)} requests ({len(sub_docs)} docs), extrapolated\n"
    )
    print(
        "| path | policy | token budget | requests timed | wall s | s for all 8000 | "
        "max abs diff vs seed path | choice flips (acc, acc_norm) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for path, policy, budget, n, secs, est, diff, flips in rows:
        print(
            f"| {path} | {policy} | {budget} | {n} | {secs:.2f} | {est:.2f} | "
            f"{'' if diff is None else f'{diff:.2e}'} | "
            f"{'' if flips is None else f'{flips[0]}, {flips[1]} of {len(sub_docs)}'} |"
        )
    if fp32:
        print(
            "\n| fp32 check: policy | shared ctx | requests | max abs diff vs seed path | "
            "greedy flips |"
        )
        print("|---|---|---|---|---|")
        for policy, share, n, diff, g in fp32:
            print(f"| {policy} | {share} | {n} | {diff:.2e} | {g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
