"""Ablation 4: the inference benchmark of one entry's translator against five baselines.

Batch 1, per sample, on the eval items:

=================  ==================================================================
``source_alone``   the text prompt (question) -> the source model
``target_alone``   the full text prompt -> the target model
``latent``         source reads the prompt -> translator -> [BOS] + K soft + ``Answer:`` -> target
``token_budget``   the first K tokens of the target's full prompt, + ``Answer:`` -> target
                   (the same input length as ``latent``: the fair compression baseline)
``cascade``        the source's text answer handed to the target: prompt + ``Source answer:``
                   + the source's generation + ``Refined answer:``
=================  ==================================================================

Each row: ``input_tokens``/``output_tokens`` of the answering model, ``kv_cache_mb`` =
:func:`ablate.bridge.models.kv_cache_mb_per_token` (from that model's config and dtype) x the
tokens its cache holds at the end (input + output), ``kv_cache_total_mb`` = that + the source's
cache for the same item (latent: the source's input; cascade: its input and answer; the text
baselines: one model, so equal), end-to-end ``latency_s`` (a latent or cascade
row includes the source's work), ``peak_mem_mb`` (``torch.cuda.max_memory_allocated``; None on
CPU, where ``peak_mem_kind`` says so), em, f1, correct. The gold-leak guard checks the
dataset-derived input of every baseline before it runs (the cascade's source answer is a model
prediction, not gold, so it is not checked).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pandas as pd
import torch

from ablate.bridge import evaluate, models, world
from ablate.bridge import params as bridge_params
from ablate.bridge import translator as tr
from ablate.bridge.pair import Pair, card_inputs, load_pair, model_dtype
from ablate.core import io, provenance

BASELINES = ("source_alone", "target_alone", "latent", "token_budget", "cascade")
CASCADE_CUE = ("\nSource answer:", "\nRefined answer:")


def _mem_start() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _mem_peak() -> float | None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return None


class Bench:
    def __init__(self, pair: Pair, translator):
        self.pair, self.translator = pair, translator
        dt = model_dtype(pair.p)
        self.kv = {
            "source": models.kv_cache_mb_per_token(pair.source.config, dt),
            "target": models.kv_cache_mb_per_token(pair.target.config, dt),
        }

    def _text(self, which: str, ids: list[int]):
        model = self.pair.source if which == "source" else self.pair.target
        tok = self.pair.src_tok if which == "source" else self.pair.tgt_tok
        texts, n_out = evaluate.generate_from_ids(model, tok, [ids], self.pair.p)
        return texts[0], len(ids), n_out[0]

    def run(self, baseline: str, item: dict[str, Any]) -> dict[str, Any]:
        pair, kind = self.pair, self.pair.kind
        src_dec = pair.src_tok.decode
        tgt_dec = pair.tgt_tok.decode
        extra: dict[str, Any] = {}
        _mem_start()
        t0 = time.perf_counter()
        if baseline == "source_alone":
            ids = pair.source_ids(item)
            evaluate.check_no_gold(
                kind, item, {"source input": src_dec(ids, skip_special_tokens=True)}
            )
            text, n_in, n_out = self._text("source", ids)
            model = "source"
        elif baseline == "target_alone":
            ids = pair.prompt_ids(item)
            evaluate.check_no_gold(
                kind, item, {"target input": tgt_dec(ids, skip_special_tokens=True)}
            )
            text, n_in, n_out = self._text("target", ids)
            model = "target"
        elif baseline == "latent":
            evaluate.check_no_gold(kind, item, pair.fed_latent(item))
            with torch.no_grad():
                embeds, mask, n_in = pair.latent_embeds(pair.soft(self.translator, [item]))
            texts, outs = evaluate.generate_from_embeds(
                pair.target, pair.tgt_tok, embeds, mask, pair.p
            )
            text, n_out, model = texts[0], outs[0], "target"
            extra["source_input_tokens"] = len(pair.source_ids(item))
        elif baseline == "token_budget":
            k = self.translator.config["K"]
            head = evaluate.head_ids(pair.tgt_tok, world.prompt(kind, item), k)  # BOS + K
            ids = head + evaluate.cue_ids(pair.tgt_tok)
            evaluate.check_no_gold(
                kind, item, {"target input": tgt_dec(ids, skip_special_tokens=True)}
            )
            text, n_in, n_out = self._text("target", ids)
            model = "target"
        elif baseline == "cascade":
            src_ids = pair.source_ids(item)
            evaluate.check_no_gold(
                kind, item, {"source input": src_dec(src_ids, skip_special_tokens=True)}
            )
            src_text, src_in, src_out = self._text("source", src_ids)
            first = evaluate.text_ids(
                pair.tgt_tok, world.prompt(kind, item) + CASCADE_CUE[0], pair.p["max_prompt_len"]
            )
            evaluate.check_no_gold(
                kind, item, {"target input": tgt_dec(first, skip_special_tokens=True)}
            )
            handed = " " + " ".join(src_text.split()) + CASCADE_CUE[1]
            ids = first + pair.tgt_tok(handed, add_special_tokens=False)["input_ids"]
            text, n_in, n_out = self._text("target", ids)
            model = "target"
            extra.update(source_input_tokens=src_in, source_output_tokens=src_out)
        else:
            raise ValueError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
        latency = time.perf_counter() - t0
        score = evaluate.score_rows(kind, [item], [text])[0]
        # the source's cache for the same item (latent: its input; cascade: input + answer)
        src_held = sum(extra.get(f"source_{k}_tokens") or 0 for k in ("input", "output"))
        return {
            "baseline": baseline,
            "id": item["id"],
            "model": model,
            "input_tokens": n_in,
            "output_tokens": n_out,
            "kv_cache_mb": self.kv[model] * (n_in + n_out),
            "kv_cache_total_mb": self.kv[model] * (n_in + n_out) + self.kv["source"] * src_held,
            "latency_s": latency,
            "peak_mem_mb": _mem_peak(),
            "peak_mem_kind": "cuda_max_memory_allocated"
            if torch.cuda.is_available()
            else "not measured (cpu)",
            "prediction": text,
            "extracted": score["extracted"],
            "gold": score["gold"],
            "correct": score["correct"],
            "em": score["em"],
            "f1": score["f1"],
            "source_input_tokens": extra.get("source_input_tokens"),
            "source_output_tokens": extra.get("source_output_tokens"),
        }


def aggregate(samples: pd.DataFrame) -> pd.DataFrame:
    """Mean per baseline (with n), in BASELINES order."""
    cols = ["correct", "em", "f1", "input_tokens", "output_tokens", "kv_cache_mb"]
    cols += ["kv_cache_total_mb", "latency_s"]
    g = samples.assign(correct=samples["correct"].astype(float)).groupby("baseline", sort=False)
    agg = g[cols].mean().rename(columns={"correct": "accuracy"})
    agg["peak_mem_mb"] = g["peak_mem_mb"].apply(
        lambda s: s.dropna().mean() if s.notna().any() else None
    )
    agg["n"] = g.size()
    order = [b for b in BASELINES if b in agg.index]
    return agg.loc[order].reset_index()


def benchmark(
    *,
    source_card,
    target_card,
    translator_dir: str | os.PathLike,
    eval_file: str | os.PathLike,
    dataset_kind: str,
    params: dict[str, Any],
    out_samples: str | os.PathLike,
    out_summary: str | os.PathLike,
    config_slice: Any = None,
    baselines: tuple[str, ...] = BASELINES,
    where: str = "bridge",
) -> pd.DataFrame:
    """Run the baselines on the first ``eval_size`` items; write per-sample rows and the aggregate.

    ``out_summary`` gets the aggregate table (.csv/.parquet by suffix) and a provenance sidecar
    ``<out_summary>.provenance.json``. Returns the aggregate.
    """
    started = time.time()
    p = bridge_params.resolve(params, where)
    items = world.load_dataset(eval_file, dataset_kind)[: p["eval_size"]]
    pair = load_pair(source_card, target_card, dataset_kind, p)
    translator = tr.load(translator_dir).to(pair.device)
    bench = Bench(pair, translator)
    rows = []
    for n, item in enumerate(items, 1):
        for b in baselines:
            rows.append(bench.run(b, item))
        if n % 16 == 0 or n == len(items):
            print(f"[benchmark] {n}/{len(items)} items x {len(baselines)} baselines", flush=True)
    samples = pd.DataFrame(rows)
    io.write_frame(out_samples, samples)
    agg = aggregate(samples)
    io.write_frame(out_summary, agg)
    io.write_json(
        f"{out_summary}.provenance.json",
        provenance.collect(
            config_slice=config_slice if config_slice is not None else p,
            inputs={
                "translator": translator_dir,
                "eval_file": eval_file,
                **card_inputs(source_card=source_card, target_card=target_card),
            },
            started=started,
            extra={"kv_cache_mb_per_token": bench.kv, "model_dtype": model_dtype(p)},
        ),
    )
    print(agg.to_string(index=False), flush=True)
    return agg
