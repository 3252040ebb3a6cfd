"""A local task's data, wherever its YAML points (``data_files``, ``data_dir``, a local folder as
``dataset_path``): every file it reads is an input of the evaluations (so in the run cache's key),
is read afresh (not served from datasets' cache, keyed by path and mtime) and is recorded by the
hash of the bytes read."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from ablate.core.config import ConfigError
from ablate.core.reruns import runcache
from ablate.mask import lm_tasks, tasks

ROWS = [
    {"context": "count up : two three four", "choices": ["five six seven .", "nine two one ."]},
    {"context": "count up : five six seven", "choices": ["three two one .", "eight nine ten ."]},
]
ROWS[0]["label"], ROWS[1]["label"] = 0, 1


def task_yaml(name: str, source: str, kwargs: str) -> str:
    return (
        f"task: {name}\ndataset_path: {source}\ndataset_kwargs: {kwargs}\ntest_split: train\n"
        "output_type: multiple_choice\ndoc_to_text: context\ndoc_to_choice: choices\n"
        "doc_to_target: label\nmetric_list:\n"
        "  - {metric: acc, aggregation: mean, higher_is_better: true}\n"
        "  - {metric: acc_norm, aggregation: mean, higher_is_better: true}\n"
    )


def write_rows(path: Path, rows=ROWS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def own(tmp_path, monkeypatch):
    """A task folder (my_tasks/, the working directory its parent) with a task of each way to
    name local data: data_files, data_dir (datasets' json builder), a local dataset folder."""
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "my_tasks"
    write_rows(d / "files.jsonl")
    write_rows(d / "rows" / "train.jsonl")
    write_rows(d / "rows" / "more" / "train-2.jsonl")
    write_rows(d / "folder" / "train.jsonl")
    (d / "folder" / "README.md").write_text("a dataset card: datasets reads its configs\n")
    (d / "folder" / ".notes.swp").write_text("hidden: datasets skips it\n")
    (d / "files.yaml").write_text(task_yaml("by_files", "json", "{data_files: files.jsonl}"))
    (d / "dir.yaml").write_text(task_yaml("by_dir", "json", "{data_dir: rows}"))
    (d / "folder.yaml").write_text(task_yaml("by_folder", "./folder", "{}"))
    return d


def test_every_file_a_task_reads_is_an_input(own):
    """G8: data reached through data_dir or a local dataset folder was no input of the
    evaluations (an edit reran nothing) and not in the run cache's key (the old result was
    restored)."""
    assert tasks.own_tasks(["my_tasks"]) == {
        "by_dir": [
            "my_tasks/dir.yaml",
            "my_tasks/rows/more/train-2.jsonl",
            "my_tasks/rows/train.jsonl",
        ],
        "by_files": ["my_tasks/files.yaml", "my_tasks/files.jsonl"],
        "by_folder": [
            "my_tasks/folder.yaml",
            "my_tasks/folder/README.md",
            "my_tasks/folder/train.jsonl",
        ],
    }


@pytest.mark.parametrize(
    "edited", ["rows/more/train-2.jsonl", "folder/train.jsonl", "folder/README.md"]
)
def test_an_edit_of_any_file_a_task_reads_changes_the_run_cache_key(own, edited):
    def key():  # the evaluation's key over its declared inputs (rules/mask/eval.smk)
        inputs = sorted({f for files in tasks.own_tasks(["my_tasks"]).values() for f in files})
        return runcache.key_of(runcache.key_parts("eval_model", {}, {}, inputs))

    before = key()
    path = own / edited
    path.write_text(path.read_text() + "\n")
    assert key() != before


def test_the_tasks_read_the_files_that_are_listed(own):
    objs, read, _ = lm_tasks.load_tasks(["by_files", "by_dir", "by_folder"], [own])
    assert [len(objs[t].eval_docs) for t in ("by_files", "by_dir", "by_folder")] == [2, 4, 2]
    listed = tasks.own_tasks(["my_tasks"])
    for t, files in read.items():  # the YAML first, then the data files, each with its sha256
        assert [Path(f).resolve() for f in files] == [Path(f).resolve() for f in listed[t]], t
        for f, digest in files.items():
            assert digest == hashlib.sha256(Path(f).read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "source, kwargs, message",
    [
        # lm-eval's habit: a folder relative to the working directory, which datasets would read
        (
            "my_tasks/folder",
            "{}",
            "dataset_path my_tasks/folder is a folder of the working directory, not of the "
            "YAML's folder",
        ),
        ("json", "{data_dir: my_tasks/rows}", "data_dir my_tasks/rows is not a folder"),
    ],
)
def test_a_folder_not_beside_the_yaml_is_refused_in_one_line(own, source, kwargs, message):
    (own / "bad.yaml").write_text(task_yaml("bad", source, kwargs))
    with pytest.raises(ConfigError) as err:
        tasks.own_tasks(["my_tasks"])
    assert str(err.value).startswith(f"invalid config at {tasks.OWN_TASKS_KEY}: task config ")
    assert message in str(err.value) and "\n" not in str(err.value)


def rewrite_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    st, data = path.stat(), path.read_bytes()
    edited = data.replace(old.encode(), new.encode())
    assert edited != data and len(edited) == len(data)
    path.write_bytes(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.usefixtures("one_torch_thread")
def test_data_rewritten_with_its_size_and_mtime_is_read_and_recorded(
    own, tmp_path, monkeypatch, tiny_model_dir
):
    """G9: datasets keys its cache of a local file by path and mtime: the evaluation after the
    edit was served the rows of the first load, and its record named the new file's sha256."""
    import datasets

    from ablate.mask.evaluation import EvalSpec, evaluate

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    data = own / "files.jsonl"
    objs, read, _ = lm_tasks.load_tasks(["by_files"], [own])  # a first load: datasets caches it
    assert "five six seven ." in {c for d in objs["by_files"].eval_docs for c in d["choices"]}
    rewrite_keeping_size_and_mtime(data, "five six seven .", "FIVE SIX SEVEN .")
    metrics = evaluate(
        EvalSpec.parse(["by_files"]),
        model=tiny_model_dir,
        policy="causal",
        out_dir=tmp_path / "eval",
        task_dirs=[own],
    )
    samples = pd.read_parquet(tmp_path / "eval" / "samples.parquet")
    assert "FIVE SIX SEVEN ." in set(samples["choice_text"])  # the new rows
    recorded = metrics["provenance"]["inputs"]
    assert recorded["task:by_files:files.jsonl"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert recorded["task:by_files:files.jsonl"] != read["by_files"][str(data.resolve())]
    assert (
        recorded["task:by_files:files.yaml"]
        == hashlib.sha256((own / "files.yaml").read_bytes()).hexdigest()
    )


def test_a_file_that_changes_while_the_task_loads_is_refused(own, monkeypatch):
    """The record names the bytes read: a data file that changed during the load (the hash
    before and after differ) stops the evaluation, naming it."""
    import datasets

    data = own / "files.jsonl"
    real = datasets.load_dataset

    def load_then_edit(*args, **kwargs):
        out = real(*args, **kwargs)
        write_rows(data, ROWS[:1])
        return out

    monkeypatch.setattr(datasets, "load_dataset", load_then_edit)
    with pytest.raises(lm_tasks.TaskFileError) as err:
        lm_tasks.load_tasks(["by_files"], [own])
    assert str(err.value) == (
        f"task by_files: {data.resolve()} changed while the evaluation read it: run it again"
    )


def test_dataset_kwargs_that_is_no_mapping_is_refused_in_one_line(own):
    (own / "bad.yaml").write_text(task_yaml("bad", "json", "files.jsonl"))
    with pytest.raises(
        ConfigError, match=r"task config .*bad.yaml: dataset_kwargs is not a mapping$"
    ):
        tasks.own_tasks(["my_tasks"])
