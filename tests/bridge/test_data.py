"""The bridge study's data files from the hub (ablate.bridge.data, a fake hub): HotpotQA rows in the
world's fields, a missing field named, GSM8K rows passing the world's check (fast)."""

from __future__ import annotations

import json

import pytest


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
