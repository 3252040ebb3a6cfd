"""The mask study's tasks (ablate.mask.tasks). The hub datasets of its lm-eval tasks, pinned to
a commit by the hub revisions' lock (pinned_datasets): the commit reaches lm-eval's dataset
loading, the evaluations' config slice (the run cache's key, the stale line, the record's
provenance). The parse-time check of own tasks (own_tasks, check_task_names) on the example of
docs/own-task.md.

No network: HF_HUB_OFFLINE is set (tests/conftest.py), lm-eval's task index is a fake or a copy
of a few of its YAMLs, ``datasets.load_dataset`` a fake."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import write_own_task

from ablate.core import planner
from ablate.core.outputs import hub_revisions
from ablate.core.reruns import runcache
from ablate.core.reruns.stale import stale_lines
from ablate.mask import layout, original_tasks, tasks

ROOT = Path(__file__).resolve().parents[2]
#: the page whose example task the checks of own tasks read (tests/mask/test_own_task.py walks it)
A, B = "a" * 40, "b" * 40
#: lm-eval's index as the real one holds the seed study's tasks (and what is not pinned)
CONFIGS = {
    "hellaswag": {"task": "hellaswag", "dataset_path": "Rowan/hellaswag", "dataset_name": None},
    "piqa": {"task": "piqa", "dataset_path": "baber/piqa"},
    "arc_easy": {"task": "arc_easy", "dataset_path": "allenai/ai2_arc", "dataset_name": "ARC-Easy"},
    "arc_challenge": {
        "task": "arc_challenge",
        "dataset_path": "allenai/ai2_arc",
        "dataset_name": "ARC-Challenge",
    },
    "winogrande": {
        "task": "winogrande",
        "dataset_path": "allenai/winogrande",
        "dataset_name": "winogrande_xl",
    },
    "own_rev": {"task": "own_rev", "dataset_path": "org/d", "dataset_kwargs": {"revision": B}},
    "files": {"task": "files", "dataset_path": "json", "dataset_kwargs": {"data_files": "x"}},
    "py_task": {"task": "py_task", "class": "x", "dataset_path": "org/p"},
    "ai2_arc": {"group": "ai2_arc", "task": ["arc_easy", "arc_challenge"]},
}


@pytest.fixture
def index(tmp_path, monkeypatch):
    """lm-eval's TaskManager faked with CONFIGS; the index cache a temporary folder."""
    import lm_eval.tasks

    built = []

    class FakeTaskManager:
        def __init__(self):
            built.append(1)
            self.all_tasks = sorted(CONFIGS)
            self.task_index = {n: SimpleNamespace(cfg=c) for n, c in CONFIGS.items()}

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", FakeTaskManager)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(hub_revisions, "_warned", set())
    return built


def lock(results: Path, sha: str) -> None:
    """The lock of ``results`` pinning every dataset of CONFIGS's main branch to ``sha``."""
    results.mkdir(parents=True, exist_ok=True)
    repos = {c["dataset_path"] for c in CONFIGS.values() if "dataset_path" in c}
    entries = {hub_revisions.key_of(r, "main", "dataset"): {"sha": sha} for r in repos}
    (results / hub_revisions.LOCK).write_text(json.dumps(entries))


def test_each_hub_task_dataset_is_pinned_through_the_lock(index, tmp_path):
    res = tmp_path / "res"
    lock(res, A)
    names = ["hellaswag", "arc_easy", "arc_challenge", "own_rev", "files", "py_task", "ai2_arc"]
    pins = tasks.pinned_datasets(names, res)
    assert pins == {
        "hellaswag": {"path": "Rowan/hellaswag", "name": None, "revision": A},
        "arc_easy": {"path": "allenai/ai2_arc", "name": "ARC-Easy", "revision": A},
        "arc_challenge": {"path": "allenai/ai2_arc", "name": "ARC-Challenge", "revision": A},
        "own_rev": {"path": "org/d", "name": None, "revision": B},  # its YAML's commit
    }
    lock(res, B)  # the lock moved (its entries deleted and resolved again): so do the pins
    assert {p["revision"] for p in tasks.pinned_datasets(names, res).values()} == {B}
    assert index == [1]  # the index (names and datasets) read from its cache the second time
    assert tasks.lm_eval_task_index() == frozenset(CONFIGS) | set(original_tasks.NAMES)


def test_the_original_study_tasks_are_pinned_as_lm_evals_are(index, tmp_path):
    """The tasks with the original's prompts load lm-eval's datasets, pinned by the same lock."""
    res = tmp_path / "res"
    lock(res, A)
    names = ["hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande"]
    pins = tasks.pinned_datasets([f"{n}_original" for n in names], res)
    assert pins == {f"{n}_original": tasks.pinned_datasets([n], res)[n] for n in names}


def test_unresolved_offline_names_the_branch(index, tmp_path, capsys):
    pins = tasks.pinned_datasets(["piqa"], tmp_path / "res")
    assert pins == {"piqa": {"path": "baber/piqa", "name": None, "revision": "main"}}
    assert "datasets/baber/piqa@main is not resolved to a commit" in capsys.readouterr().err


def test_an_older_index_cache_of_names_is_rebuilt(index, tmp_path):
    cached = tasks.cache_dir() / f"lm_eval-{tasks.metadata.version('lm_eval')}-tasks.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps(sorted(CONFIGS)))  # an earlier version's list of names
    assert tasks.pinned_datasets(["piqa"], None)["piqa"]["path"] == "baber/piqa"
    assert index == [1] and isinstance(json.loads(cached.read_text()), dict)


def seed_study(results: Path) -> dict:
    cfg = planner.load_config(ROOT / "config/ministral3b.yaml")
    cfg["results"] = str(results)
    return cfg


def eval_key(job) -> str:
    return runcache.key_of(runcache.key_parts(job.rule, job.wildcards, {"eval": job.config}, []))


def test_a_new_pin_is_a_new_eval_key_and_a_stale_line(index, tmp_path, monkeypatch):
    """Before, the evaluations' slice held the task names only: an upstream dataset change kept
    the key (a cached evaluation restored) and named no commit."""
    monkeypatch.chdir(tmp_path)
    res = tmp_path / "res"
    lock(res, A)
    (old,) = [j for j in layout.jobs(seed_study(res)) if j.name == "eval/base/causal"]
    assert old.config["datasets"]["winogrande"] == {
        "path": "allenai/winogrande",
        "name": "winogrande_xl",
        "revision": A,
    }
    assert set(old.config["datasets"]) == {t["name"] for t in old.config["tasks"]}
    record = tmp_path / old.record
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"provenance": {"config": old.config}}))
    lock(res, B)
    (new,) = [j for j in layout.jobs(seed_study(res)) if j.name == "eval/base/causal"]
    assert eval_key(new) != eval_key(old)
    lines = [x for x in stale_lines([new], seed_study(res)) if "eval_model base/causal" in x]
    assert len(lines) == 1
    assert f'{res / hub_revisions.LOCK} (allenai/winogrande) "{A}" -> "{B}"' in lines[0]


def test_the_embedded_tasks_slice_is_unchanged():
    """The embedded world's tasks are generated files: no lm-eval index, no pin, the node alone."""
    cfg = planner.load_config(ROOT / "config/config.yaml")
    (job,) = [j for j in layout.jobs(cfg) if j.name == "eval/base/causal"]
    # task_dirs (none here) and the other late keys at their defaults stay out of the slice, so a
    # finished run's params are unchanged
    assert cfg["mask"]["eval"]["task_dirs"] == []
    unset = {k: v for k, v in cfg["mask"]["eval"].items() if k not in layout.LATE_EVAL_KEYS}
    assert job.config == layout.sorted_tree(unset)
    assert job.labels["where"] == "mask.eval"


def test_a_pin_reaches_lm_evals_dataset_loading(tmp_path, monkeypatch):
    """lm-eval's own arc YAMLs (arc_challenge includes arc_easy's), the hub faked: the pinned
    task loads its dataset at the commit, the other as lm-eval names it."""
    import datasets
    import lm_eval.tasks

    from ablate.mask import lm_tasks

    arc = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks" / "arc"
    shutil.copytree(arc, tmp_path / "arc")
    real = lm_eval.tasks.TaskManager
    # only the copied YAMLs: the full index takes tens of seconds to build
    monkeypatch.setattr(
        lm_eval.tasks,
        "TaskManager",
        lambda **kw: real(include_path=str(tmp_path / "arc"), include_defaults=False),  # fmt: skip
    )
    loaded = []
    row = {"id": "1", "question": "q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}}
    split = datasets.Dataset.from_list([{**row, "answerKey": "B"}])

    def load_dataset(path, name=None, **kwargs):
        loaded.append((path, name, kwargs))
        return datasets.DatasetDict({s: split for s in ("train", "validation", "test")})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    pins = {"arc_challenge": {"path": "allenai/ai2_arc", "name": "ARC-Challenge", "revision": A}}
    objs, _, _ = lm_tasks.load_tasks(["arc_challenge", "arc_easy"], datasets=pins)
    assert sorted(loaded) == [
        ("allenai/ai2_arc", "ARC-Challenge", {"revision": A}),
        ("allenai/ai2_arc", "ARC-Easy", {}),
    ]
    assert objs["arc_challenge"].config.dataset_kwargs == {"revision": A}
    assert len(objs["arc_challenge"].eval_docs) == 1  # its functions and includes resolved


# ------------------------------------------------------------------ own tasks (mask.eval.task_dirs)


@pytest.mark.parametrize("value", ["5", "null", "''", "{name: x}"])
def test_own_tasks_refuse_a_task_key_that_is_no_name(tmp_path, monkeypatch, value):
    from ablate.core.config import ConfigError
    from ablate.mask import tasks

    monkeypatch.chdir(tmp_path)
    write_own_task(tmp_path)
    yaml_file = tmp_path / "my_tasks/count_up.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("task: count_up", f"task: {value}"))
    with pytest.raises(ConfigError) as info:
        tasks.own_tasks(["my_tasks"])
    assert str(info.value).startswith(
        "invalid config at mask.eval.task_dirs: my_tasks/count_up.yaml: the key 'task' is "
    ), info.value


def test_own_tasks_name_their_files_and_refuse_what_cannot_load(tmp_path, monkeypatch):
    """The parse-time check itself (ablate.mask.tasks), without a workflow."""
    from ablate.core.config import ConfigError
    from ablate.mask import tasks

    monkeypatch.chdir(tmp_path)
    write_own_task(tmp_path)
    own = tasks.own_tasks(["my_tasks"])
    assert own == {"count_up": ["my_tasks/count_up.yaml", "my_tasks/count_up.jsonl"]}
    tasks.check_task_names(["emb_count", "count_up"], embedded=True, own=own)
    with pytest.raises(ConfigError, match="emb_count is already an embedded task"):
        tasks.check_task_names(["emb_count"], embedded=True, own={"emb_count": []})
    (tmp_path / "again").mkdir()
    (tmp_path / "again/copy.yaml").write_text((tmp_path / "my_tasks/count_up.yaml").read_text())
    with pytest.raises(ConfigError, match="data file .* does not exist"):
        tasks.own_tasks(["again"])
    (tmp_path / "again/count_up.jsonl").write_text("")
    with pytest.raises(ConfigError, match="task count_up is in my_tasks/count_up.yaml and again"):
        tasks.own_tasks(["my_tasks", "again"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="at mask.eval.task_dirs: empty holds no"):
        tasks.own_tasks(["empty"])
