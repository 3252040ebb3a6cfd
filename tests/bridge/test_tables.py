"""The bridge study's tables, plan, claims and hub data on small fabricated inputs (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import BRIDGE_ENTRIES as ENTRIES
from helpers import run_summary

from ablate.bridge import claims, tables
from ablate.core.outputs import io


@pytest.fixture
def runs(tmp_path):
    finals = {"r1a": 0.8, "r1b": 0.3, "r2a": 0.4, "r2b": 0.6}
    ks = {"r1a": 8, "r1b": 8, "r2a": 4, "r2b": 6}
    summaries, benches, samples = {}, {}, {}
    rng = np.random.default_rng(0)
    for run_id, final in finals.items():
        d = tmp_path / run_id
        summaries[run_id] = io.write_json(
            d / "summary.json", run_summary(run_id, 0.9, final, ks[run_id])
        )
        benches[run_id] = d / "bench.tsv"
        benches[run_id].write_text("s\th:m:s\n36.0\t0:00:36\n")
        correct = rng.random(200) < final
        samples[run_id] = io.write_frame(
            d / "samples.parquet",
            pd.DataFrame({"id": [f"q{i}" for i in range(200)], "correct": correct}),
        )
    return summaries, benches, samples


def test_summary_maps_same_as_to_its_twin(runs, tmp_path):
    summaries, benches, _ = runs
    summary, curves = tables.build_summary(ENTRIES, summaries, benches, gpus=4)
    s = summary.set_index("entry")
    assert s.loc["2c", "run_id"] == "r1a" and s.loc["2c", "reuses"] == "1a"
    assert s.loc["2c", "final"] == s.loc["1a", "final"] == 0.8
    assert s.loc["1b", "degradation"] == pytest.approx(0.6)
    assert s.loc["2a", "compression_ratio"] == 6.0
    assert s.loc["1a", "gpu_hours"] == pytest.approx(36.0 * 4 / 3600)
    assert set(curves["entry"]) == set(ENTRIES)


def test_summary_refuses_a_file_of_another_run(runs):
    summaries, benches, _ = runs
    summaries = {**summaries, "r1b": summaries["r1a"]}
    with pytest.raises(ValueError, match="records run r1a, not r1b"):
        tables.build_summary(ENTRIES, summaries, benches, gpus=0)


def infer_samples(path: Path, acc: dict[str, float], kv: dict[str, float], source_kv=None) -> Path:
    """Benchmark rows; ``source_kv``: the source's cache per baseline (total = target + it)."""
    rng = np.random.default_rng(1)
    rows = []
    for b, a in acc.items():
        correct = rng.random(100) < a
        for i, c in enumerate(correct):
            target = kv[b] + 0.001 * (i % 3)
            total = target + (source_kv or {}).get(b, 0.0)
            rows.append(
                dict(
                    baseline=b,
                    id=f"q{i}",
                    correct=bool(c),
                    kv_cache_mb=target,
                    kv_cache_total_mb=total,
                )  # fmt: skip
            )
    return io.write_frame(path, pd.DataFrame(rows))


def test_claims_from_fabricated_results(runs, tmp_path):
    _, _, samples = runs
    kv = dict(source_alone=1.0, target_alone=2.0, latent=0.5, token_budget=0.5, cascade=3.0)
    main = infer_samples(
        tmp_path / "main.parquet",
        dict(source_alone=0.2, target_alone=0.3, latent=0.9, token_budget=0.1, cascade=0.85),
        kv,
    )
    df = claims.write(
        ENTRIES, samples, {"entry": main}, tmp_path / "claims.csv", tmp_path / "claims.md"
    ).set_index("claim")
    assert df.loc["latent_beats_both", "verdict"] == "supported"
    assert df.loc["stability_fixes_work", "verdict"] == "supported"
    assert df.loc["compression_tradeoff", "verdict"] == "supported"  # 0.4 < 0.6 < 0.8 in K
    assert df.loc["soft_beats_text", "verdict"] == "inconclusive"  # 0.9 vs 0.85: noise
    assert df.loc["kv_savings", "verdict"] == "supported"
    assert "saved" in df.loc["kv_savings", "evidence"]
    # no QA entry benchmarked: that claim did not run, and says why
    assert df.loc["generalises_beyond_math", "verdict"] == "not run"
    assert (df["test"].str.len() > 0).sum() == 5
    assert (tmp_path / "claims.md").read_text().startswith("# Claims: bridge")


def test_kv_claim_counts_the_source_cache(runs, tmp_path):
    """The latent's target cache is smaller, but the source's cache of the same request makes the
    total larger than the target alone: the claim (on the total) is not supported."""
    _, _, samples = runs
    acc = dict(source_alone=0.2, target_alone=0.3, latent=0.9, token_budget=0.1, cascade=0.85)
    kv = dict(source_alone=1.0, target_alone=2.0, latent=0.5, token_budget=0.5, cascade=3.0)
    src = dict(latent=2.0, cascade=1.5)
    main = infer_samples(tmp_path / "main.parquet", acc, kv, source_kv=src)
    df = claims.write(ENTRIES, samples, {"entry": main}, tmp_path / "c.csv", None)
    row = df.set_index("claim").loc["kv_savings"]
    assert row["verdict"] == "not supported"
    assert "source + target" in row["evidence"] and "target's cache alone 0.5010" in row["evidence"]


def test_embedded_claims_table_says_what_it_can_show(runs, tmp_path):
    _, _, samples = runs
    e, r = (tmp_path / "e", tmp_path / "r")
    claims.write(ENTRIES, samples, {}, tmp_path / "c.csv", f"{e}.md", f"{e}.html", embedded=True)
    claims.write(ENTRIES, samples, {}, tmp_path / "c.csv", f"{r}.md", f"{r}.html")
    embedded, real = Path(f"{e}.md").read_text(), Path(f"{r}.md").read_text()
    assert embedded.startswith(real) and "show the plumbing, not the seed's claims" in embedded
    assert "config/latentwire.yaml" in embedded and "plumbing" not in real
    # the report's page (the HTML) says it too
    assert "plumbing" in Path(f"{e}.html").read_text()
    assert "plumbing" not in Path(f"{r}.html").read_text()


def test_claims_the_wrong_way_are_not_supported(runs, tmp_path):
    _, _, samples = runs
    swapped = {**samples, "r1a": samples["r1b"], "r1b": samples["r1a"]}
    df = claims.write(ENTRIES, swapped, {}, tmp_path / "c.csv", None).set_index("claim")
    assert df.loc["stability_fixes_work", "verdict"] == "not supported"
    assert df.loc["compression_tradeoff", "verdict"] == "not supported"
    assert df.loc["latent_beats_both", "verdict"] == "not run"


# ------------------------------------------------------------------ hub data (no network)


def fake_hub(monkeypatch, splits: dict[str, list[dict]]):
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split, revision))
        return datasets.Dataset.from_list(splits[split])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hotpot_rows_become_the_world_fields(monkeypatch, tmp_path):
    from ablate.bridge import data, hub, world

    row = {
        "id": "h1",
        "question": "Which country?",
        "answer": "Norway",
        "context": {
            "title": ["Anna", "Oslo"],
            "sentences": [["Anna lives ", "in Oslo."], ["Oslo is in Norway."]],
        },
    }
    calls = fake_hub(monkeypatch, {"train": [row], "validation": [row]})
    spec = dict(
        path="hotpotqa/hotpot_qa", name="distractor", train_split="train", test_split="validation"
    )
    hub.check_dataset("bridge.data.hotpotqa", spec)  # the id the shipped config names
    files = data.fetch_hub("hotpotqa", spec, tmp_path)
    assert [f.name for f in files] == ["qa_train.jsonl", "qa_test.jsonl"]
    assert calls[1] == ("hotpotqa/hotpot_qa", "distractor", "validation", None)
    (item,) = world.load_dataset(files[1], "qa")
    assert item["context"] == ["Anna: Anna lives in Oslo.", "Oslo: Oslo is in Norway."]
    assert item["answer"] == "Norway"


def test_hub_dataset_without_a_field_is_named(monkeypatch, tmp_path):
    from ablate.bridge import data
    from ablate.bridge.world import DatasetError

    fake_hub(monkeypatch, {"train": [{"question": "1+1?", "solution": "2"}]})
    spec = dict(path="gsm8k", name="main", train_split="train", test_split="test")
    with pytest.raises(
        DatasetError, match=r"bridge.data.gsm8k: gsm8k .* lacks the field\(s\) answer"
    ):
        data.fetch_hub("gsm8k", spec, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_gsm8k_hub_rows_pass_the_world_check(monkeypatch, tmp_path):
    from ablate.bridge import data

    rows = [{"question": "2+3?", "answer": "2+3=5\n#### 5"}]
    fake_hub(monkeypatch, {"train": rows, "test": rows})
    spec = dict(path="gsm8k", name="main", train_split="train", test_split="test")
    record = tmp_path / "provenance.json"
    block = data.write({"source": "hub", "gsm8k": spec}, ["gsm8k"], tmp_path, record)
    assert json.loads(record.read_text())["config_hash"] == block["config_hash"]
    assert (tmp_path / "gsm8k_test.jsonl").exists()
