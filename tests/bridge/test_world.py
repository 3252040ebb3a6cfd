"""Bridge study: generated world, dataset checks, GSM8K extraction, EM/F1, KV-cache size."""

from __future__ import annotations

import json

import pytest

from ablate.bridge import models, scoring, world


def test_world_is_deterministic_and_gsm8k_shaped(tmp_path, bridge_world):
    again = world.write_world(
        tmp_path, seed=0, n_train=16, n_test=8, n_qa_train=16, n_qa_test=8, n_corpus=200
    )
    for name, path in bridge_world.items():
        assert again[name].read_bytes() == path.read_bytes(), name
    other = world.write_world(
        tmp_path / "s1", seed=1, n_train=16, n_test=8, n_qa_train=16, n_qa_test=8, n_corpus=200
    )
    assert other["gsm8k_test"].read_bytes() != bridge_world["gsm8k_test"].read_bytes()
    rows = world.load_dataset(bridge_world["gsm8k_test"], "gsm8k")
    for r in rows:
        final = r["answer"].splitlines()[-1]
        assert final.startswith("#### ")
        assert scoring.extract_gsm8k(r["answer"]) == final.removeprefix("#### ")
    qa = world.load_dataset(bridge_world["qa_test"], "qa")
    for r in qa:
        assert isinstance(r["context"], list) and r["answer"] in world.CITIES.values()
        # the bridging fact and the second hop are both in the context
        assert any(f" is in {r['answer']}." in fact for fact in r["context"])


def test_corpus_holds_no_test_question(bridge_world):
    corpus = [json.loads(x)["text"] for x in bridge_world["corpus"].read_text().splitlines()]
    for kind, name in (("gsm8k", "gsm8k_test"), ("qa", "qa_test")):
        for r in world.load_dataset(bridge_world[name], kind):
            assert not any(doc.startswith(world.prompt(kind, r)) for doc in corpus)


@pytest.mark.parametrize(
    "kind,row,missing",
    [
        ("gsm8k", {"question": "q"}, "answer"),
        ("qa", {"question": "q", "answer": "a"}, "context"),
        ("qa", {"context": ["c"], "answer": "a"}, "question"),
    ],
)
def test_dataset_without_field_names_file_and_field(tmp_path, kind, row, missing):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(world.DatasetError, match=rf"bad\.jsonl line 1 lacks the field '{missing}'"):
        world.check_dataset(path, kind)


def test_gsm8k_answer_without_marker_is_refused(tmp_path):
    path = tmp_path / "nomarker.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "it is 4"}) + "\n")
    with pytest.raises(world.DatasetError, match="nomarker.jsonl line 1.*'answer'.*####"):
        world.check_dataset(path, "gsm8k")


def test_gsm8k_extraction():
    assert scoring.extract_gsm8k("3 + 4 = 7\n#### 7") == "7"
    assert scoring.extract_gsm8k("#### 1,234") == "1234"
    assert scoring.extract_gsm8k("#### -5.") == "-5"
    assert scoring.extract_gsm8k("#### 3 then #### 9") == "3"
    assert scoring.extract_gsm8k("the answer is 7") == scoring.INVALID
    assert scoring.extract_gsm8k("") == scoring.INVALID


def test_invalid_is_never_correct():
    # no number in the generation, and the gold itself unparseable: still wrong
    s = scoring.score("gsm8k", "no answer here", scoring.INVALID)
    assert s["extracted"] == scoring.INVALID and s["correct"] is False and s["em"] == 0.0
    assert scoring.score("gsm8k", "#### 7", scoring.INVALID)["correct"] is False
    assert scoring.score("gsm8k", "x", "7")["correct"] is False
    assert scoring.score("gsm8k", "2 + 5 = 7\n#### 7", "7")["correct"] is True
    assert scoring.score("gsm8k", "#### 7.0", "7")["correct"] is True


def test_qa_is_scored_by_em_f1_never_by_the_gsm8k_extractor():
    # two QA generations without '####': the GSM8K extractor would call both [invalid] == match
    assert scoring.score("qa", "Paris", "Rome")["correct"] is False
    s = scoring.score("qa", " The Eiffel Tower\nmore text", "Eiffel tower")
    assert s["em"] == 1.0 and s["f1"] == 1.0 and s["correct"] is True
    s = scoring.score("qa", "big red house", "red house")
    assert s["em"] == 0.0 and s["f1"] == pytest.approx(0.8)
    assert scoring.f1("x y y", "y y z") == pytest.approx(2 / 3)  # multiset: y counted twice
    assert scoring.f1("a b b", "b b c") == pytest.approx(0.8)  # "a" is an article: dropped
    assert scoring.score("qa", "", "France")["correct"] is False
    with pytest.raises(scoring.ScoringError, match="unknown dataset kind 'hotpot'"):
        scoring.score("hotpot", "x", "y")


def test_kv_cache_size_from_llama_3_1_8b_config():
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=16,  # irrelevant to the cache; small so the config is cheap
    )
    assert models.kv_cache_mb_per_token(cfg, "bfloat16") == pytest.approx(0.125)
    assert models.kv_cache_mb_per_token(cfg, "float32") == pytest.approx(0.25)
    # the seed's constant 0.5 MB/token was 4x too high
    assert models.kv_cache_mb_per_token(cfg, "bfloat16") * 4 == pytest.approx(0.5)
