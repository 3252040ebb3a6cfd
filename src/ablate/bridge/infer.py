"""Ablation 4: the inference benchmark of one entry's translator against five baselines.

The passes, baselines and columns: docs/bridge.md ("Inference benchmark"). The gold-leak guard
checks every baseline's dataset-derived input (the cascade's source answer is not gold).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import pandas as pd
import torch

from ablate.bridge import evaluate, models, world
from ablate.bridge import params as bridge_params
from ablate.bridge import translator as tr
from ablate.bridge.pair import Pair, card_inputs, load_pair, model_dtype
from ablate.core.outputs import io, provenance
from ablate.core.reports import stats

BASELINES = ("source_alone", "target_alone", "latent", "token_budget", "cascade")
_CASCADE_CUE = ("\nSource answer:", "\nRefined answer:")
#: a row's source tokens (None where the baseline does not run the source)
_SOURCE_TOKENS = ("source_input_tokens", "source_output_tokens")


class Bench:
    def __init__(self, pair: Pair, translator, timed: bool = False):
        self.pair, self.translator = pair, translator
        dt = model_dtype(pair.p)
        self.kv = {
            "source": models.kv_cache_mb_per_token(pair.source.config, dt),
            "target": models.kv_cache_mb_per_token(pair.target.config, dt),
        }
        p = pair.p
        #: timed calls share one static-cache length (the longest a baseline can need: the
        #: cascade's prompt + the source's answer), so none recompiles the decode step
        longest = max(p.max_source_len, p.max_prompt_len + p.max_new_tokens + 16)
        self.cache_len = longest + p.max_new_tokens if timed else None
        self.batch = 1 if timed else p.eval_batch_size

    def _gen(self, which: str, id_lists: list[list[int]]) -> tuple[list[str], list[int]]:
        model = self.pair.source if which == "source" else self.pair.target
        tok = self.pair.src_tok if which == "source" else self.pair.tgt_tok
        return self._engine(model, tok, evaluate.embed_ids(model, id_lists))

    def _engine(self, model, tok, prompts) -> tuple[list[str], list[int]]:
        return evaluate.generate(model, tok, prompts, self.pair.p, self.batch, self.cache_len)

    def _guard(self, items, which: str, id_lists) -> None:
        tok = self.pair.src_tok if which == "source" else self.pair.tgt_tok
        for item, ids in zip(items, id_lists, strict=True):
            text = tok.decode(ids, skip_special_tokens=True)
            evaluate.check_no_gold(self.pair.kind, item, {f"{which} input": text})

    def answers(self, baseline: str, items) -> tuple[str, list[int], list[str], list[int], dict]:
        """One baseline on ``items``: (model, input tokens, texts, new tokens, per-row extras)."""
        pair = self.pair
        extra: dict[str, list] = {}
        if baseline in ("source_alone", "cascade"):
            src = [pair.source_ids(i) for i in items]
            self._guard(items, "source", src)
            texts, n_out = self._gen("source", src)
            if baseline == "source_alone":
                return "source", [len(x) for x in src], texts, n_out, extra
            extra = dict(source_input_tokens=[len(x) for x in src], source_output_tokens=n_out)
            ids = [self._cascade_ids(i, t) for i, t in zip(items, texts, strict=True)]
        elif baseline == "latent":
            for item in items:
                evaluate.check_no_gold(pair.kind, item, pair.fed_latent(item))
            rows = pair.latent_rows(self.translator, items)
            texts, n_out = self._engine(pair.target, pair.tgt_tok, rows)
            extra = dict(source_input_tokens=[len(pair.source_ids(i)) for i in items])
            return "target", [len(r) for r in rows], texts, n_out, extra
        elif baseline == "target_alone":
            ids = [pair.prompt_ids(i) for i in items]
            self._guard(items, "target", ids)
        elif baseline == "token_budget":
            k, cue = self.translator.config["K"], evaluate.cue_ids(pair.tgt_tok)
            # BOS + the first K tokens of the full prompt (not of a left-cut one) + cue
            ids = [
                evaluate.head_ids(pair.tgt_tok, world.prompt(pair.kind, i), k) + cue for i in items
            ]
            self._guard(items, "target", ids)
        else:
            raise ValueError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
        texts, n_out = self._gen("target", ids)
        return "target", [len(x) for x in ids], texts, n_out, extra

    def _cascade_ids(self, item, src_text: str) -> list[int]:
        """prompt + ``Source answer:`` + the source's answer + ``Refined answer:``."""
        pair = self.pair
        first = evaluate.text_ids(
            pair.tgt_tok, world.prompt(pair.kind, item) + _CASCADE_CUE[0], pair.p.max_prompt_len
        )
        self._guard([item], "target", [first])
        handed = " " + " ".join(src_text.split()) + _CASCADE_CUE[1]
        return first + pair.tgt_tok(handed, add_special_tokens=False)["input_ids"]

    def rows(self, baseline: str, items) -> list[dict[str, Any]]:
        model, n_in, texts, n_out, extra = self.answers(baseline, items)
        scores = evaluate.score_rows(self.pair.kind, items, texts)
        out = []
        for r, (item, score) in enumerate(zip(items, scores, strict=True)):
            out.append(
                {
                    "baseline": baseline,
                    "id": item["id"],
                    "model": model,
                    "input_tokens": n_in[r],
                    "output_tokens": n_out[r],
                    "kv_cache_mb": self.kv[model] * (n_in[r] + n_out[r]),
                    # the source's cache for the same item (latent: its input; cascade: + answer)
                    "kv_cache_total_mb": self.kv[model] * (n_in[r] + n_out[r])
                    + self.kv["source"] * sum(held[r] for held in extra.values()),
                    **{k: v for k, v in score.items() if k != "id"},  # prediction .. f1
                    **{k: (extra.get(k) or [None] * len(items))[r] for k in _SOURCE_TOKENS},
                }
            )
        return out

    def run(self, baseline: str, item: dict[str, Any]) -> dict[str, Any]:
        """One item at batch 1, timed end to end, with its peak memory."""
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        row = self.rows(baseline, [item])[0]
        latency = time.perf_counter() - t0
        if cuda:
            torch.cuda.synchronize()
        return {
            **row,
            "latency_s": latency,
            "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "peak_mem_kind": "cuda_max_memory_allocated" if cuda else "not measured (cpu)",
        }


def timed(bench: Bench, items, baselines) -> dict[tuple[str, str], dict[str, Any]]:
    """(baseline, id) -> latency and peak memory at batch 1, after one warm-up per baseline."""
    if not items:
        return {}
    for b in baselines:
        bench.run(b, items[0])  # compiles the decode step on a GPU; warms allocators on CPU
    how = "static KV cache + compiled decode step" if torch.cuda.is_available() else "eager (cpu)"
    out = {}
    for item in items:
        for b in baselines:
            r = bench.run(b, item)
            out[(b, item["id"])] = {
                "timed": True,
                "timing": f"batch 1, {how}, end to end, after a warm-up",
                "latency_s": r["latency_s"],
                "timed_output_tokens": r["output_tokens"],
                "peak_mem_mb": r["peak_mem_mb"],
                "peak_mem_kind": r["peak_mem_kind"],
            }
    return out


def _batched_rows(bench: Bench, items, baselines) -> list[dict[str, Any]]:
    """The quality rows, with each baseline's ``batched_s_per_item``."""
    rows = []
    for b in baselines:
        t0 = time.perf_counter()
        part = bench.rows(b, items)
        per_item = (time.perf_counter() - t0) / len(items)
        rows.extend({**r, "batched_s_per_item": per_item} for r in part)
        print(f"[benchmark] {b}: {len(items)} items, {per_item:.3f} s/item batched", flush=True)
    return rows


def _samples_frame(rows, timings, batch: int) -> pd.DataFrame:
    """One row per (baseline, item): its quality, and its timing where it was timed."""
    untimed = {
        "timed": False,
        "timing": f"not timed (decoded at batch {batch} for quality)",
        "latency_s": None,
        "timed_output_tokens": None,
        "peak_mem_mb": None,
        "peak_mem_kind": "not timed",
    }
    frame = pd.DataFrame([{**r, **timings.get((r["baseline"], r["id"]), untimed)} for r in rows])
    # item by item, the baselines in order (the rows' order before the batched pass)
    item = {i: n for n, i in enumerate(dict.fromkeys(frame["id"]))}
    rank = frame["baseline"].map(BASELINES.index) + len(BASELINES) * frame["id"].map(item)
    return frame.iloc[rank.argsort(kind="stable")].reset_index(drop=True)


def _latency_stats(latency: pd.Series) -> dict[str, float]:
    """Mean (with its 95% t interval), p50, p90 of the timed rows' latencies."""
    x = latency.dropna().astype(float)
    mean, lo, hi = stats.mean_ci(x.to_numpy())
    q = x.quantile([0.5, 0.9]) if len(x) else pd.Series([math.nan, math.nan], index=[0.5, 0.9])
    return {
        "latency_s": mean,
        "latency_ci_low_s": lo,
        "latency_ci_high_s": hi,
        "latency_p50_s": float(q[0.5]),
        "latency_p90_s": float(q[0.9]),
        "n_timed": len(x),
    }


def _aggregate(samples: pd.DataFrame) -> pd.DataFrame:
    """Per baseline, in BASELINES order: means over every item, latency over the timed rows."""
    cols = ["correct", "em", "f1", "input_tokens", "output_tokens", "kv_cache_mb"]
    cols += ["kv_cache_total_mb"]
    g = samples.assign(correct=samples["correct"].astype(float)).groupby("baseline", sort=False)
    agg = g[cols].mean().rename(columns={"correct": "accuracy"})
    lat = pd.DataFrame({b: _latency_stats(part["latency_s"]) for b, part in g}).T
    agg = agg.join(lat)
    agg["peak_mem_mb"] = g["peak_mem_mb"].apply(
        lambda s: s.dropna().mean() if s.notna().any() else None
    )
    agg["batched_s_per_item"] = g["batched_s_per_item"].first()
    agg["n"] = g.size()
    order = [b for b in BASELINES if b in agg.index]
    return agg.loc[order].reset_index()


def benchmark(
    spec: bridge_params.RunSpec,
    *,
    source_card,
    target_card,
    translator_dir: str | os.PathLike,
    eval_file: str | os.PathLike,
    out_samples: str | os.PathLike,
    out_summary: str | os.PathLike,
) -> pd.DataFrame:
    """Both passes; writes the per-sample rows and the aggregate (with provenance), returns it."""
    started = time.time()
    models.check_pinned({"source": source_card, "target": target_card}, spec.identity)
    p = bridge_params.check(spec.params, spec.where)
    dataset_kind, baselines = spec.kind, BASELINES
    items = world.load_dataset(eval_file, dataset_kind)[: p.eval_size]
    pair = load_pair(source_card, target_card, dataset_kind, p)
    translator = tr.load(translator_dir).to(pair.device)
    bench = Bench(pair, translator)
    rows = _batched_rows(bench, items, baselines)
    timings = timed(Bench(pair, translator, timed=True), items[: spec.timed_samples], baselines)
    samples = _samples_frame(rows, timings, p.eval_batch_size)
    io.write_frame(out_samples, samples)
    agg = _aggregate(samples)
    io.write_frame(out_summary, agg)
    io.write_json(
        f"{out_summary}.provenance.json",
        provenance.collect(
            config_slice=spec.record_slice(),
            inputs={
                "translator": translator_dir,
                "eval_file": eval_file,
                **card_inputs(source_card=source_card, target_card=target_card),
            },
            started=started,
            extra={"kv_cache_mb_per_token": bench.kv, "model_dtype": model_dtype(pair.p)},
        ),
    )
    print(agg.to_string(index=False), flush=True)
    return agg
