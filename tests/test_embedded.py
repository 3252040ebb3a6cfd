"""The embedded world: deterministic, well-formed, and loadable by lm-eval through our task path."""

from __future__ import annotations

import json

import pytest

from ablate.mask import embedded


def _read(path):
    return path.read_bytes()


def test_generators_are_deterministic(tmp_path):
    a = embedded.write_all(tmp_path / "a", corpus_docs=30, task_docs=20, sft_pairs=15)
    b = embedded.write_all(tmp_path / "b", corpus_docs=30, task_docs=20, sft_pairs=15)
    c = embedded.write_all(tmp_path / "c", seed=1, corpus_docs=30, task_docs=20, sft_pairs=15)
    for key in ("corpus", "sft"):
        assert _read(a[key]) == _read(b[key])
        assert _read(a[key]) != _read(c[key])
    for name in embedded.TASK_NAMES:
        for ext in ("jsonl", "yaml"):
            assert _read(a["tasks"] / f"{name}.{ext}") == _read(b["tasks"] / f"{name}.{ext}")
        assert _read(a["tasks"] / f"{name}.jsonl") != _read(c["tasks"] / f"{name}.jsonl")
    # Streams are independent: a bigger corpus leaves the tasks unchanged.
    d = embedded.write_all(tmp_path / "d", corpus_docs=60, task_docs=20, sft_pairs=15)
    assert _read(d["tasks"] / "emb_sums.jsonl") == _read(a["tasks"] / "emb_sums.jsonl")


@pytest.mark.parametrize("name", embedded.TASK_NAMES)
def test_task_docs_well_formed(name):
    docs = embedded.task_docs(name, seed=0, n_docs=200)
    assert [d["id"] for d in docs] == list(range(200))
    labels = [d["label"] for d in docs]
    if name == "emb_animals":
        for d in docs:
            assert len(d["options"]) == 2 and len(set(d["options"])) == 2
            animal = d["options"][d["label"]].split()[-1]
            assert (animal, d["continuation"].split()[1]) in embedded.FOODS
    else:
        n = {"emb_tools": 2}.get(name, 4)
        for d in docs:
            assert len(d["choices"]) == n and len(set(d["choices"])) == n
    # the gold position is spread over all positions (no positional shortcut)
    assert set(labels) == set(range(max(labels) + 1)) and max(labels) >= 1


def test_facts_are_right():
    for d in embedded.task_docs("emb_sums", 0, 50):
        a, _, b, _ = d["context"].split()
        total = embedded.NUMBERS.index(a) + embedded.NUMBERS.index(b) + 2
        assert d["choices"][d["label"]] == embedded.NUMBERS[total - 1]
    opposite = {w: o for p in embedded.OPPOSITES for w, o in (p, p[::-1])}
    for d in embedded.task_docs("emb_opposites", 0, 50):
        assert d["choices"][d["label"]] == opposite[d["context"].split()[3]]
    tool_for = dict(embedded.TOOLS)
    for d in embedded.task_docs("emb_tools", 0, 50):
        goal = d["context"].removeprefix("to ").removesuffix(" use")
        assert d["choices"][d["label"]] == f"{tool_for[goal]} ."
    for d in embedded.task_docs("emb_count", 0, 50):
        words = d["context"].split()
        seq = list(embedded.NUMBERS)[:: 1 if words[1] == "up" else -1]
        i = seq.index(words[-1])
        assert d["choices"][d["label"]] == " ".join(seq[i + 1 : i + 4]) + " ."


def test_corpus_states_task_facts(tmp_path):
    paths = embedded.write_all(tmp_path, corpus_docs=200, task_docs=10, sft_pairs=10)
    text = " ".join(json.loads(line)["text"] for line in paths["corpus"].open())
    # every task template occurs, with its answer, in the pretraining text
    assert "the opposite of" in text
    assert all(f"to {goal} use {tool} ." in text for goal, tool in embedded.TOOLS)
    assert "count up :" in text and "count down :" in text
    assert " likes " in text and " plus " in text
    rows = [json.loads(line) for line in paths["sft"].open()]
    assert all(set(r) == {"instruction", "input", "output"} and r["output"] for r in rows)


def test_sft_rows_pass_the_sft_loader(tmp_path):
    from ablate.mask import sft_data

    path = embedded.write_sft(tmp_path / "sft.jsonl", seed=0, n=20)
    rows = [json.loads(line) for line in path.open()]
    sft_data.check_columns(rows, str(path))


def test_tasks_load_in_lm_eval_from_anywhere(tmp_path, monkeypatch):
    from ablate.mask.evaluation import load_tasks

    embedded.write_tasks(tmp_path / "orig", seed=0, n_docs=12)
    moved = tmp_path / "moved"
    (tmp_path / "orig").rename(moved)  # the results folder moved after `ablate data`
    monkeypatch.chdir(tmp_path)  # and the job runs from somewhere else
    tasks, local, _ = load_tasks(list(embedded.TASK_NAMES), [moved])
    assert set(tasks) == set(embedded.TASK_NAMES)
    for name, task in tasks.items():
        assert len(task.eval_docs) == 12
        assert local[name]["dataset_kwargs"]["data_files"]["test"] == str(
            (moved / f"{name}.jsonl").resolve()
        )
    assert tasks["emb_animals"].multiple_input == 2  # winogrande-style partial scoring
    assert tasks["emb_count"].multiple_input == 0


def test_cli(tmp_path, capsys):
    assert embedded.main(["--out", str(tmp_path), "--corpus-docs", "5", "--task-docs", "3"]) == 0
    assert (tmp_path / "corpus.jsonl").exists() and (tmp_path / "sft.jsonl").exists()
    assert sorted(p.name for p in (tmp_path / "tasks").glob("*.yaml")) == sorted(
        f"{n}.yaml" for n in embedded.TASK_NAMES
    )
    assert len((tmp_path / "corpus.jsonl").read_text().splitlines()) == 5
    with pytest.raises(KeyError, match="unknown embedded data option"):
        embedded.write_all(tmp_path, corpus_size=3)
