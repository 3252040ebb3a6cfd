"""lm-eval tasks of an evaluation (ablate.mask.lm_tasks), without loading one: a local task YAML
read with its data paths made absolute against its folder and the sha256 of its bytes, the
refusals naming the file, the data files a task's config reads, a doc's gold index. (Loading
local tasks and their data: tests/mask/test_task_data.py, tests/mask/test_evaluation.py.)"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from ablate.mask import lm_tasks, original_tasks


def write(path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_local_tasks_resolve_data_paths_against_the_yamls_folder(tmp_path, monkeypatch):
    d = tmp_path / "tasks"
    write(d / "data" / "rows.jsonl", "{}\n")
    yaml_text = "task: mine\ndataset_path: json\ndataset_kwargs: {data_files: data/rows.jsonl}\n"
    write(d / "mine.yaml", yaml_text)
    monkeypatch.chdir(tmp_path)  # not the YAML's folder
    (task,) = lm_tasks.local_tasks("tasks").values()
    assert task.yaml == Path("tasks", "mine.yaml")  # as given: the record names it so
    assert task.yaml_sha256 == hashlib.sha256(yaml_text.encode()).hexdigest()
    assert task.config["dataset_kwargs"]["data_files"] == str((d / "data" / "rows.jsonl").resolve())


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("task: [a, b]\n", "the key 'task' is ['a', 'b'], not a task name"),
        ("dataset_path: json\n", "is not an lm-eval task config (no 'task' key)"),
        ("task: [unclosed\n", "bad.yaml:2:1: not valid YAML"),
        ("task: t\ndataset_kwargs: [1]\n", "dataset_kwargs is not a mapping"),
    ],
)
def test_a_yaml_that_is_no_task_is_refused_naming_the_file(tmp_path, text, says):
    write(tmp_path / "bad.yaml", text)
    with pytest.raises(lm_tasks.TaskFileError, match="bad.yaml") as err:
        lm_tasks.local_tasks(tmp_path)
    assert says in str(err.value)


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"task: a\ndataset_path: json\ntask: b\n", "bad.yaml: the key task is written twice, at "
      "lines 1 and 3 (YAML would keep the second silently): delete one of them"),
     (b"\x1f\x8b\x08\x00\xff\xfe", "bad.yaml: not UTF-8 text (byte 1 is 0x8b; a binary file?)")],
    ids=["key-twice", "binary"],
)  # fmt: skip
def test_a_task_yaml_yaml_would_misread_is_refused_naming_the_file(tmp_path, content, says):
    """A key written twice was read as its second value, silently; a binary file was reported
    as "no 'task' key"."""
    (tmp_path / "bad.yaml").write_bytes(content)
    with pytest.raises(lm_tasks.TaskFileError) as err:
        lm_tasks.local_tasks(tmp_path)
    assert str(err.value).startswith(f"task config {tmp_path / says}"), str(err.value)
    assert "\n" not in str(err.value)


def test_one_task_name_in_two_files_of_a_folder_is_refused(tmp_path):
    """Which of the two a run read was the sorted order's choice, silently."""
    write(tmp_path / "a.yaml", "task: same\n")
    write(tmp_path / "b.yaml", "task: same\n")
    with pytest.raises(lm_tasks.TaskFileError) as err:
        lm_tasks.local_tasks(tmp_path)
    assert str(err.value) == f"task same is in {tmp_path / 'a.yaml'} and {tmp_path / 'b.yaml'}"


def test_data_file_list_is_every_file_named_and_every_visible_file_of_a_folder(tmp_path):
    for name in ("a.jsonl", "b.jsonl", "dir/train.jsonl", "dir/sub/more.jsonl", "dir/.hidden"):
        write(tmp_path / name)
    write(tmp_path / "dir" / "__cache" / "x.arrow")
    files = {"train": [str(tmp_path / "a.jsonl")], "test": str(tmp_path / "b.jsonl")}
    assert lm_tasks.data_file_list({"dataset_kwargs": {"data_files": files}}) == [
        str(tmp_path / "a.jsonl"),
        str(tmp_path / "b.jsonl"),
    ]
    folder = [str(tmp_path / "dir/sub/more.jsonl"), str(tmp_path / "dir/train.jsonl")]
    assert lm_tasks.data_file_list({"dataset_path": str(tmp_path / "dir")}) == folder
    assert lm_tasks.data_file_list({"dataset_kwargs": {"data_dir": str(tmp_path / "dir")}}) == (
        folder
    )
    assert lm_tasks.data_file_list({"dataset_path": "org/hub_dataset"}) == []


def test_gold_index_of_a_text_a_number_and_several_answers():
    task = SimpleNamespace(multiple_input=False, doc_to_target=lambda doc: doc["gold"])
    choices = ["yes", "no"]
    assert [lm_tasks.gold_index(task, {"gold": g}, choices) for g in ("no", "maybe", 0)] == [
        1,
        -1,
        0,
    ]
    assert lm_tasks.gold_index(task, {"gold": [0, 1]}, choices) == -1
    # winogrande's form: the gold is the context's index
    task = SimpleNamespace(multiple_input=True, doc_to_text=lambda doc: 1)
    assert lm_tasks.gold_index(task, {}, choices) == 1


def test_an_unknown_task_stops_on_the_cached_index_before_lm_eval_indexes_its_tasks(
    tmp_path, monkeypatch
):
    """A typo answers at once where a dry run's name check left lm-eval's index in the cache
    (building the TaskManager reads every task YAML lm-eval ships: 20 s); without the cache, the
    TaskManager the load builds anyway answers, built once."""
    import lm_eval.tasks

    from ablate.mask import tasks

    built = []

    class FakeTaskManager:
        def __init__(self, **kwargs):
            built.append(kwargs)
            self.all_tasks, self.task_index = ["hellaswag", "piqa"], {}

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", FakeTaskManager)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    typo = r"unknown task\(s\): 'hellaswg' \(did you mean hellaswag\b"
    with pytest.raises(lm_tasks.TaskNotFoundError, match=typo):
        lm_tasks.load_tasks(["hellaswg"], cached_index=tasks.cached_task_index)
    assert len(built) == 1 and built[0]["include_defaults"]  # no cache: the load's own
    tasks.lm_eval_task_index()  # the cache, as a dry run's name check leaves it
    built.clear()
    with pytest.raises(lm_tasks.TaskNotFoundError, match=typo):
        lm_tasks.load_tasks(["hellaswg"], cached_index=tasks.cached_task_index)
    assert built == []
    # an original protocol's task is no lm-eval name: beside a typo, only the typo is unknown
    original = sorted(original_tasks.NAMES)[0]
    with pytest.raises(lm_tasks.TaskNotFoundError, match=r"unknown task\(s\): 'hellaswg' \("):
        lm_tasks.load_tasks([original, "hellaswg"], cached_index=tasks.cached_task_index)
