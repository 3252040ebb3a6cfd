"""Ablation 4, the inference benchmark (ablate.bridge.infer): five baselines per sample, the timed
subset, the token budget's input (the micro pair)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from bridge_fixtures import MICRO_PARAMS

from ablate.bridge import evaluate, infer, world
from ablate.bridge import params as bridge_params
from ablate.bridge.pair import load_pair


def test_benchmark_writes_five_baselines_per_sample(
    bridge_entry, bridge_cards, bridge_world, tmp_path
):
    out, _ = bridge_entry
    agg = infer.benchmark(
        bridge_params.RunSpec.parse(
            "micro-0001", {**MICRO_PARAMS, "eval_size": 2}, "gsm8k", timed_samples=1
        ),
        source_card=bridge_cards["source"],
        target_card=bridge_cards["target"],
        translator_dir=out / "translator",
        eval_file=bridge_world["gsm8k_test"],
        out_samples=tmp_path / "samples.parquet",
        out_summary=tmp_path / "summary.csv",
    )
    s = pd.read_parquet(tmp_path / "samples.parquet")
    assert len(s) == 2 * 5
    # every item scored (batched); the first one timed again at batch 1, and the rows say so
    first = s["id"] == s["id"].iloc[0]
    assert s["timed"].tolist() == first.tolist()
    assert s.loc[first, "latency_s"].gt(0).all() and s.loc[~first, "latency_s"].isna().all()
    assert s.loc[first, "timing"].str.startswith("batch 1").all()
    assert s.loc[~first, "timing"].str.startswith("not timed").all()
    assert (agg["n_timed"] == 1).all() and agg["latency_p90_s"].gt(0).all()
    for _, rows in s.groupby("id"):
        assert sorted(rows["baseline"]) == sorted(infer.BASELINES)
    for col in ("input_tokens", "output_tokens", "kv_cache_mb", "latency_s", "peak_mem_mb",
                "peak_mem_kind", "em", "f1", "correct"):  # fmt: skip
        assert col in s.columns, col
    lat = s[s.baseline == "latent"].iloc[0]
    assert lat.input_tokens == 1 + MICRO_PARAMS["K"] + len(
        evaluate.cue_ids(load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k",
                                   bridge_params.check(bridge_params.resolve(MICRO_PARAMS))).tgt_tok)
    )  # fmt: skip
    budget = s[s.baseline == "token_budget"].iloc[0]
    assert budget.input_tokens == lat.input_tokens  # the same input length: a fair comparison
    assert (s.kv_cache_mb > 0).all()
    # total = the answering model's cache + the source's for the same item
    kv = json.loads((tmp_path / "summary.csv.provenance.json").read_text())["kv_cache_mb_per_token"]
    src = s.source_input_tokens.fillna(0) + s.source_output_tokens.fillna(0)
    want = s.kv_cache_mb + kv["source"] * src.where(s.model == "target", 0)
    assert s.kv_cache_total_mb.tolist() == pytest.approx(want.tolist())
    assert (
        s[s.baseline == "latent"].kv_cache_total_mb > s[s.baseline == "latent"].kv_cache_mb
    ).all()
    assert list(agg["baseline"]) == list(infer.BASELINES) and (agg["n"] == 2).all()
    assert pd.read_csv(tmp_path / "summary.csv").shape[0] == 5
    assert (tmp_path / "summary.csv.provenance.json").exists()


def test_token_budget_is_the_start_of_the_full_prompt(bridge_cards, bridge_world, monkeypatch):
    """A prompt longer than max_prompt_len: the budget is its first K tokens, not the first K
    of the prompt already cut from the left (which start mid-question)."""
    p = bridge_params.check(bridge_params.resolve({**MICRO_PARAMS, "K": 3, "max_prompt_len": 12}))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    item = world.load_dataset(bridge_world["gsm8k_test"], "gsm8k")[0]
    item = {**item, "question": "Gin has many cards. " * 4 + item["question"]}
    assert len(pair.tgt_tok(world.prompt("gsm8k", item))["input_ids"]) > 12  # long
    fed = []

    def fake_gen(self, which, id_lists):  # what the bench hands the engine
        fed.extend(id_lists)
        return ["#### 1"] * len(id_lists), [1] * len(id_lists)

    monkeypatch.setattr(infer.Bench, "_gen", fake_gen)
    translator = SimpleNamespace(config={"K": 3})
    row = infer.Bench(pair, translator).run("token_budget", item)
    full = pair.tgt_tok(world.prompt("gsm8k", item))["input_ids"]
    assert fed == [full[:4] + evaluate.cue_ids(pair.tgt_tok)]
    assert pair.tgt_tok.decode(fed[0], skip_special_tokens=True).startswith("Question: G")
    assert row["input_tokens"] == 1 + 3 + len(evaluate.cue_ids(pair.tgt_tok))
