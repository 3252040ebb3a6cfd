"""lm-eval task objects for an evaluation: local task YAMLs (their data files resolved), tasks
loaded by name (local first, then lm-eval's index) with close matches for an unknown one, a
task's hub dataset loaded at its pinned commit, and each local doc checked for a valid gold
answer before it is scored.

Local paths resolve against the YAML's folder and the tasks load in an empty working directory,
so datasets reads no local file outside :func:`data_file_list` (the evaluations' declared
inputs). datasets caches a local file by path and mtime, not bytes: a local task loads through a
fresh cache, its files hashed before and after, so the record names the bytes read.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.core.user_yaml import ConfigError, load_yaml
from ablate.upstream import lmeval


class TaskNotFoundError(ValueError):
    pass


class TaskFileError(ValueError):
    """A local task's YAML or data file is malformed; the message names the file (and row)."""


def _resolve_data_files(files, base: Path, yaml_path: Path):
    if isinstance(files, dict):
        return {k: _resolve_data_files(v, base, yaml_path) for k, v in files.items()}
    if isinstance(files, (list, tuple)):
        return [_resolve_data_files(v, base, yaml_path) for v in files]
    path = Path(os.path.expanduser(str(files)))
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise FileNotFoundError(f"task {yaml_path}: data file {path} does not exist")
    return str(path.resolve())


def _local_folder(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return (path if path.is_absolute() else base / path).resolve()


def _with_local_paths(cfg: dict[str, Any], yaml_path: Path) -> dict[str, Any]:
    """``cfg`` with its local ``dataset_path``, a builder's ``data_dir`` and ``data_files`` absolute,
    resolved against the YAML's folder as datasets resolves them. TaskFileError for a folder
    that would be read from the working directory instead, or a ``data_dir`` that is no folder."""
    base = yaml_path.parent
    if not isinstance(cfg.get("dataset_kwargs") or {}, dict):
        raise TaskFileError(f"task config {yaml_path}: dataset_kwargs is not a mapping")
    kwargs = dict(cfg.get("dataset_kwargs") or {})
    source = cfg.get("dataset_path")
    # written as a path (a bare word is a datasets builder such as json, or a hub id)
    local_source = isinstance(source, str) and ("/" in source or source.startswith((".", "~")))
    if local_source and _local_folder(source, base).is_dir():
        cfg["dataset_path"] = str(_local_folder(source, base))
        base = Path(cfg["dataset_path"], kwargs.get("data_dir") or "")
    elif local_source and Path(source).is_dir():  # datasets would read it from the cwd
        raise TaskFileError(
            f"task config {yaml_path}: dataset_path {source} is a folder of the working "
            f"directory, not of the YAML's folder {yaml_path.parent}: give it relative to the "
            "YAML's folder, or absolute"
        )
    elif kwargs.get("data_dir") is not None and not local_source:
        # a datasets builder (json, csv, ...) on a local folder; a hub dataset's is in its repo
        data_dir = _local_folder(str(kwargs["data_dir"]), base)
        if not data_dir.is_dir():
            raise TaskFileError(
                f"task config {yaml_path}: data_dir {kwargs['data_dir']} is not a folder "
                f"({data_dir}): give it relative to the YAML's folder, or absolute"
            )
        base, kwargs["data_dir"] = data_dir, str(data_dir)
    if kwargs.get("data_files") is not None:
        kwargs["data_files"] = _resolve_data_files(kwargs["data_files"], base, yaml_path)
    if kwargs:
        cfg["dataset_kwargs"] = kwargs
    return cfg


@dataclass(frozen=True)
class _LocalTask:
    """A local YAML, the sha256 of its parsed bytes, its config (local paths absolute)."""

    yaml: Path
    yaml_sha256: str
    config: dict[str, Any]


def local_tasks(task_dir: str | os.PathLike) -> dict[str, _LocalTask]:
    """Task name -> :class:`_LocalTask` for every ``*.yaml`` in ``task_dir``."""
    d = Path(task_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"task folder {d} does not exist")
    tasks = {}
    for path in sorted(d.glob("*.yaml")):
        raw = path.read_bytes()
        try:  # a binary file, a syntax error, a key written twice: one line naming the file
            cfg = load_yaml(raw, f"task config {path}")
        except ConfigError as exc:
            raise TaskFileError(str(exc)) from None
        if not isinstance(cfg, dict) or "task" not in cfg:
            raise TaskFileError(f"{path} is not an lm-eval task config (no 'task' key)")
        if not isinstance(cfg["task"], str) or not cfg["task"].strip():
            # a list (lm-eval's group form), a number or nothing: no task name to index it by
            raise TaskFileError(
                f"{path}: the key 'task' is {cfg['task']!r}, not a task name: write one name as "
                "text (task: my_task; a number in quotes), one task per YAML file"
            )
        if cfg["task"] in tasks:  # one name in two files: which one a run reads is no choice
            raise TaskFileError(f"task {cfg['task']} is in {tasks[cfg['task']].yaml} and {path}")
        cfg = _with_local_paths(cfg, path)
        tasks[cfg["task"]] = _LocalTask(path, hashlib.sha256(raw).hexdigest(), cfg)
    return tasks


def pinned_config(tm, name: str, revision: str) -> dict[str, Any]:
    """lm-eval's whole config of registered task ``name`` with ``dataset_kwargs.revision`` (a dict
    naming a task is read as its full config, not an override)."""
    cfg = lmeval.load_task_yaml(tm.task_index[name].yaml_path)
    cfg["dataset_kwargs"] = {**(cfg.get("dataset_kwargs") or {}), "revision": revision}
    return cfg


def load_tasks(
    tasks: list[str],
    task_dirs=(),
    datasets: dict[str, dict] | None = None,
    cached_index: Callable[[], frozenset[str] | None] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, str]], Any]:
    """lm-eval Task objects by name (local configs first), what the local tasks read (task ->
    file -> sha256, the YAML first), and the TaskManager (for ``simple_evaluate``, which would
    otherwise index every task again). ``datasets``: task -> its hub pin
    (:func:`ablate.mask.tasks.pinned_datasets`). Unknown tasks are a :class:`TaskNotFoundError`
    with close matches, from ``cached_index()`` where lm-eval's names are cached: before the
    TaskManager indexes every YAML lm-eval ships (20 s on a CPU)."""
    from lm_eval.tasks import TaskManager

    from ablate.mask import original_tasks

    found: dict[str, _LocalTask] = {}
    for d in task_dirs:
        found.update(local_tasks(d))
    local = {name: task.config for name, task in found.items()}
    remote = [t for t in tasks if t not in local]
    lm_eval_own = [t for t in remote if t not in original_tasks.NAMES]
    index = cached_index() if lm_eval_own and cached_index else None
    if index is not None and (unknown := [t for t in remote if t not in index]):
        raise _unknown_tasks(unknown, [*local, *index], local)
    # skip the 5 s scan of lm-eval's own tasks when none is asked for
    tm = TaskManager(
        include_defaults=bool(lm_eval_own),
        include_path=str(original_tasks.TASK_DIR) if remote else None,
    )
    unknown = [t for t in remote if t not in tm.all_tasks]
    if unknown:
        raise _unknown_tasks(unknown, list(local) + tm.all_tasks, local)
    used = [t for t in tasks if t in local]
    before = {t: _sha256s(data_file_list(local[t])) for t in used}
    try:
        pins = {t: d["revision"] for t, d in (datasets or {}).items() if t in remote}
        with tempfile.TemporaryDirectory(prefix="ablate-tasks-") as empty:
            specs = [
                _fresh_cache(local[t], Path(empty, ".cache", t))
                if t in local
                else pinned_config(tm, t, pins[t])
                if t in pins
                else t
                for t in tasks
            ]
            with contextlib.chdir(empty):
                loaded = tm.load(specs)
    # datasets hides the file and row in __cause__ (DatasetGenerationError)
    except Exception as exc:
        files = [f for t in tasks if t in local for f in data_file_list(local[t])]
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise TaskFileError(
            f"cannot load task(s) {', '.join(tasks)}: {type(exc).__name__}: {exc}{cause}"
            + (f"; local data files: {', '.join(files)}" if files else "")
        ) from exc
    read = {}
    for t in used:
        after = _sha256s(data_file_list(local[t]))
        if changed := [f for f in {*before[t], *after} if before[t].get(f) != after.get(f)]:
            raise TaskFileError(
                f"task {t}: {changed[0]} changed while the evaluation read it: run it again"
            )
        read[t] = {str(found[t].yaml): found[t].yaml_sha256, **after}
    for t in used:  # a doc without a valid gold answer would be scored silently wrong
        _check_local_docs(t, loaded["tasks"][t], local[t])
    return loaded["tasks"], read, tm


def _unknown_tasks(unknown: list[str], known: list[str], local) -> TaskNotFoundError:
    """The error naming the ``unknown`` tasks with their close matches, and the ``local`` ones."""
    hints = {t: difflib.get_close_matches(t, known, n=3) for t in unknown}
    return TaskNotFoundError(
        "unknown task(s): "
        + "; ".join(
            f"{t!r}" + (f" (did you mean {', '.join(h)}?)" if h else "") for t, h in hints.items()
        )
        + (f". Local tasks: {', '.join(sorted(local))}" if local else "")
    )


def _sha256s(files: list[str]) -> dict[str, str]:
    from ablate.core.outputs.checkpoint_integrity import hash_files

    return dict(zip(files, hash_files([Path(f) for f in files]), strict=True))


def _fresh_cache(cfg: dict[str, Any], cache: Path) -> dict[str, Any]:
    """``cfg`` loading its local data in memory through the empty datasets ``cache``."""
    if not data_file_list(cfg):
        return cfg  # hub data: its cache is keyed by the pinned commit
    kwargs = {**(cfg.get("dataset_kwargs") or {}), "cache_dir": str(cache), "keep_in_memory": True}
    return {**cfg, "dataset_kwargs": kwargs}


def _check_local_docs(name: str, task, cfg: dict) -> None:
    for i, doc in enumerate(task.eval_docs):
        try:
            choices = task.doc_to_choice(doc)
            if isinstance(task.doc_to_target(doc), list):
                continue  # several gold answers: lm-eval checks those itself
            gold = gold_index(task, doc, choices)
        except Exception as exc:
            gold, choices = exc, []
        if isinstance(gold, Exception) or not 0 <= gold < len(choices):
            raise TaskFileError(
                f"task {name} ({', '.join(data_file_list(cfg))}): doc {i} has no valid gold answer "
                f"among its choices ({gold!r}); doc keys: {', '.join(sorted(doc))}"
            )


def gold_index(task, doc, choices: list[str]) -> int:
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    if isinstance(gold, str):
        return choices.index(gold) if gold in choices else -1
    if isinstance(gold, int):
        return gold
    return -1  # several gold answers: the per-doc acc columns stay exact


def data_file_list(cfg: dict) -> list[str]:
    """Every local file a task's config (of :func:`local_tasks`) reads through datasets: its
    ``data_files`` and the files of a local ``dataset_path`` or ``data_dir`` folder."""
    kwargs = cfg.get("dataset_kwargs") or {}
    files = kwargs.get("data_files") or []
    if isinstance(files, dict):
        files = list(files.values())
    flat: list[str] = []
    for f in files if isinstance(files, list) else [files]:
        flat.extend(f if isinstance(f, list) else [f])
    for folder in (cfg.get("dataset_path"), kwargs.get("data_dir")):
        if isinstance(folder, str) and os.path.isabs(folder):
            flat.extend(f for f in _folder_files(Path(folder)) if f not in flat)
            break  # a local dataset_path's data_dir is inside it
    return flat


def _folder_files(folder: Path) -> list[str]:
    """A folder's files that datasets reads: not hidden ones (a part starting . or __)."""
    return [
        str(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(x.startswith((".", "__")) for x in p.relative_to(folder).parts)
    ]
