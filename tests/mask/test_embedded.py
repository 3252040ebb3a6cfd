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
    assert _read(d["tasks"] / "emb_repeat5.jsonl") == _read(a["tasks"] / "emb_repeat5.jsonl")


@pytest.mark.parametrize("name", embedded.TASK_NAMES)
def test_task_docs_well_formed(name):
    docs = embedded.task_docs(name, seed=0, n_docs=200)
    assert [d["id"] for d in docs] == list(range(200))
    labels = [d["label"] for d in docs]
    if name == embedded.PARTIAL:
        for d in docs:
            assert len(d["options"]) == 2 and len(set(d["options"])) == 2
            # the two orders hold the same words: only the order tells them apart
            assert sorted(d["options"][0].split()) == sorted(d["options"][1].split())
    else:
        n = {"emb_pair": 2}.get(name, 4)
        for d in docs:
            assert len(d["choices"]) == n and len(set(d["choices"])) == n
    # the gold position is spread over all positions (no positional shortcut)
    assert set(labels) == set(range(max(labels) + 1)) and max(labels) >= 1


def _next_after_repetition(context: str) -> str:
    """The item that follows the repeated prefix, read off the list (the tasks' rule)."""
    listed, _, again = context.partition(" . again : ")
    items, prefix = listed.split(), again.split()
    assert items[: len(prefix)] == prefix
    return items[len(prefix)]


def test_facts_are_right():
    for name, n in (("emb_pair", 4), ("emb_repeat3", 3), ("emb_repeat5", 5)):
        for d in embedded.task_docs(name, 0, 50):
            assert len(d["context"].partition(" . ")[0].split()) == n
            assert d["choices"][d["label"]] == _next_after_repetition(d["context"])
    for d in embedded.task_docs("emb_order", 0, 50):
        right, wrong = d["options"][d["label"]], d["options"][1 - d["label"]]
        assert _next_after_repetition(right) == d["continuation"]
        listed, _, again = wrong.partition(" . again : ")
        items = listed.split()
        after = items.index(again.split()[-1]) + 1
        assert (items + ["."])[after] != d["continuation"]  # in the other order it does not follow
    for d in embedded.task_docs("emb_count", 0, 50):
        words = d["context"].split()
        seq = list(embedded.NUMBERS)[:: 1 if words[1] == "up" else -1]
        i = seq.index(words[-1])
        assert d["choices"][d["label"]] == " ".join(seq[i + 1 : i + 4]) + " ."


def test_world_words_are_single_tekken_tokens(tokenizer):
    # one token per item: a choice's loglikelihood is one prediction, and acc_norm's length
    # normalisation cannot favour an item by its spelling alone
    for word in (*embedded.NUMBERS, *embedded.THINGS):
        assert len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1, word


def test_corpus_states_task_facts(tmp_path):
    paths = embedded.write_all(tmp_path, corpus_docs=200, task_docs=10, sft_pairs=10)
    docs = [json.loads(line)["text"] for line in paths["corpus"].open()]
    assert len(docs) == 200
    text = " ".join(docs)
    # every task template occurs, with its answer, in the pretraining text
    assert "count up :" in text and "count down :" in text
    assert text.count(" . again : ") > 200


def test_sft_pairs_continue_the_context_to_the_end_of_the_list():
    """A plain pair is a task context and the rest of its sentence: for a repetition, the items
    from the answer to the list's end, in order; for counting, the three numbers."""
    rows = embedded.sft_pairs(seed=0, n=200)
    assert all(set(r) == {"prompt", "output"} for r in rows)
    assert all(r["output"].startswith(" ") and not r["output"].endswith(".") for r in rows)
    reps = [r for r in rows if " . again : " in r["prompt"]]
    assert len(reps) > 100
    for r in reps:
        listed, _, again = r["prompt"].partition(" . again : ")
        items, k = listed.split(), len(again.split())
        assert again.split() == items[:k] and r["output"].split() == items[k:]
    counts = [r for r in rows if r["prompt"].startswith("count ")]
    assert counts and all(len(r["output"].split()) == 3 for r in counts)


def test_random_split_cuts_each_sentence_between_its_first_word_and_the_answer():
    """``sft_split: random``: prompt + response is the ``answer`` split's whole sentence, cut
    after any word from the first to the answer's predecessor, each point about equally often."""
    import collections
    import random

    fact = embedded.FACTS["emb_repeat5"](random.Random(3))
    whole = embedded._sft_row(fact, "answer", random.Random(0))
    n_context = len(fact["context"].split())
    rng = random.Random(0)
    cuts = collections.Counter()
    for _ in range(2000):
        row = embedded._sft_row(fact, "random", rng)
        assert row["prompt"] + row["output"] == whole["prompt"] + whole["output"]
        assert row["output"].startswith(" ") and not row["prompt"].endswith(" ")
        cuts[len(row["prompt"].split())] += 1
    assert set(cuts) == set(range(1, n_context + 1))
    assert min(cuts.values()) > 2000 / n_context / 2
    rows = embedded.sft_pairs(seed=0, n=50, split="random")
    assert any(" again " in r["output"] for r in rows)  # some cut before the repetition
    with pytest.raises(ValueError, match="sft_split: 'middle'"):
        embedded.sft_pairs(seed=0, n=3, split="middle")
    # the config schema offers exactly these, its default first
    from ablate.core import config

    schema = config.subschema(
        "properties/mask/properties/data/properties/embedded/properties/sft_split"
    )
    assert (
        tuple(schema["enum"]) == embedded.SFT_SPLITS and schema["default"] == embedded.SFT_SPLITS[0]
    )


def test_sft_rows_pass_the_sft_loader(tmp_path):
    from ablate.mask import sft_data

    path = embedded.write_sft(tmp_path / "sft.jsonl", seed=0, n=20)
    rows = [json.loads(line) for line in path.open()]
    sft_data.check_columns(rows, str(path))


def test_tasks_load_in_lm_eval_from_anywhere(tmp_path, monkeypatch):
    from ablate.mask.lm_tasks import load_tasks

    embedded.write_tasks(tmp_path / "orig", seed=0, n_docs=12)
    moved = tmp_path / "moved"
    (tmp_path / "orig").rename(moved)  # the results folder moved after `ablate data`
    monkeypatch.chdir(tmp_path)  # and the job runs from somewhere else
    tasks, read, _ = load_tasks(list(embedded.TASK_NAMES), [moved])
    assert set(tasks) == set(embedded.TASK_NAMES)
    for name, task in tasks.items():
        assert len(task.eval_docs) == 12
        assert list(read[name])[1:] == [str((moved / f"{name}.jsonl").resolve())]
    assert tasks[embedded.PARTIAL].multiple_input == 2  # winogrande-style partial scoring
    assert tasks["emb_count"].multiple_input == 0


def test_cli_defaults_are_the_embedded_defaults_world(tmp_path, monkeypatch, capsys):
    """`ablate data --out DIR` wrote a smaller world than the embedded default's (1200 documents,
    5 sentences, 400 pairs split at the answer, seed 0: the schema's defaults) and `--help` said
    those: now its defaults are config/config.yaml's mask.data, what make_data writes there."""
    from helpers import ROOT, shipped_config, validated

    monkeypatch.chdir(ROOT)
    data = validated(shipped_config("config.yaml"))["mask"]["data"]
    want = {"seed": data["seed"], **data["embedded"]}
    assert embedded.config_options("config/config.yaml") == want
    assert want["corpus_docs"] != embedded.options()["corpus_docs"]  # not the schema's
    with pytest.raises(SystemExit):
        embedded.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        f"--corpus-docs CORPUS_DOCS default {want['corpus_docs']} (config/config.yaml" in help_text
    )
    assert embedded.main(["--out", str(tmp_path / "cli")]) == 0
    embedded.write_all(tmp_path / "pipeline", **want)  # what make_data writes for the default
    for name in ("corpus.jsonl", "sft.jsonl"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "pipeline" / name).read_bytes()


def test_cli(tmp_path, capsys):
    argv = [
        "--out",
        str(tmp_path),
        "--corpus-docs",
        "5",
        "--task-docs",
        "3",
        "--sft-pairs",
        "4",
        "--sft-split",
        "random",
    ]
    assert embedded.main(argv) == 0
    assert (tmp_path / "corpus.jsonl").exists() and (tmp_path / "sft.jsonl").exists()
    assert sorted(p.name for p in (tmp_path / "tasks").glob("*.yaml")) == sorted(
        f"{n}.yaml" for n in embedded.TASK_NAMES
    )
    assert len((tmp_path / "corpus.jsonl").read_text().splitlines()) == 5
    assert len((tmp_path / "sft.jsonl").read_text().splitlines()) == 4
    with pytest.raises(KeyError, match="unknown embedded data option"):
        embedded.write_all(tmp_path, corpus_size=3)
    with pytest.raises(SystemExit):  # argparse names the choices
        embedded.main(["--out", str(tmp_path), "--sft-split", "middle"])
    assert "invalid choice: 'middle'" in capsys.readouterr().err


#: a --configfile that ``ablate data`` cannot take (by name under tmp_path, or a shipped one),
#: and the line it stops in
UNREADABLE_CONFIGFILES = {
    "list.yaml": "{f}: holds a list of 2 items, not config keys: a config file is a mapping of "
    "`key: value` lines (results: results)",
    "nope.yaml": "config file {f} does not exist",
    "config/latentwire.yaml": "config {f} has no mask: section (the embedded world is the mask "
    "study's data): give a config of that study, such as config/config.yaml",
}


@pytest.mark.parametrize("name", list(UNREADABLE_CONFIGFILES))
def test_a_configfile_that_does_not_read_stops_in_one_line(tmp_path, capsys, name):
    """``ablate data --configfile list.yaml`` (a YAML list) ended in a PlanError traceback, a
    bridge-only config in a KeyError one, and ``--configfile nope.yaml`` (missing) wrote the
    schema's smaller world without a word: each is one line naming the file, nothing written."""
    from helpers import ROOT

    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    f = ROOT / name if name.startswith("config/") else tmp_path / name
    out = tmp_path / "d"
    assert embedded.main(["--configfile", str(f), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"ablate data: {UNREADABLE_CONFIGFILES[name].format(f=f)}\n"
    assert not out.exists()
