"""The embedded bridge world (ablate.bridge.world): generated deterministically, its corpus free of
test questions, its dataset checks."""

from __future__ import annotations

import json

import pytest

from ablate.bridge import scoring, world


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
