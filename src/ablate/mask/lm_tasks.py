"""lm-eval task objects for an evaluation: local task YAMLs (their data files resolved), tasks
loaded by name (local first, then lm-eval's index) with close matches for an unknown one, a
task's hub dataset loaded at its pinned commit, and each local doc checked for a valid gold
answer before it is scored."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any


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


def local_task_configs(task_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Task name -> lm-eval config for every ``*.yaml`` in ``task_dir``.

    Relative ``dataset_kwargs.data_files`` are resolved against the YAML's folder, so the task
    folder can move and the job can run from any working directory.
    """
    import yaml

    d = Path(task_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"task folder {d} does not exist")
    configs = {}
    for path in sorted(d.glob("*.yaml")):
        try:
            cfg = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:  # its own message names "<unicode string>", not the file
            raise TaskFileError(f"task config {path} is not valid YAML: {exc}") from exc
        if not isinstance(cfg, dict) or "task" not in cfg:
            raise TaskFileError(f"{path} is not an lm-eval task config (no 'task' key)")
        if not isinstance(cfg["task"], str) or not cfg["task"].strip():
            # a list (lm-eval's group form), a number or nothing: no task name to index it by
            raise TaskFileError(
                f"{path}: the key 'task' is {cfg['task']!r}, not a task name: write one name as "
                "text (task: my_task; a number in quotes), one task per YAML file"
            )
        files = (cfg.get("dataset_kwargs") or {}).get("data_files")
        if files is not None:
            cfg["dataset_kwargs"]["data_files"] = _resolve_data_files(files, path.parent, path)
        configs[cfg["task"]] = cfg
    return configs


def pinned_config(tm, name: str, revision: str) -> dict[str, Any]:
    """lm-eval's config of registered task ``name`` (its YAML, includes and functions resolved)
    with ``dataset_kwargs.revision``, which lm-eval hands to ``datasets.load_dataset``. The whole
    config: lm-eval reads a dict naming a task as that task's full config, not an override."""
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(tm.task_index[name].yaml_path, resolve_func=True)
    cfg["dataset_kwargs"] = {**(cfg.get("dataset_kwargs") or {}), "revision": revision}
    return cfg


def load_tasks(
    tasks: list[str], task_dirs=(), datasets: dict[str, dict] | None = None
) -> tuple[dict[str, Any], dict[str, dict], Any]:
    """lm-eval Task objects by name (local configs first), the local configs used, and the
    TaskManager (hand it to ``simple_evaluate``, which otherwise builds the full index again).

    ``datasets``: task -> its hub dataset's pin (``revision``: the commit it loads,
    :func:`ablate.mask.tasks.pinned_datasets`); a task without one loads what lm-eval names.
    Raises :class:`TaskNotFoundError` naming unknown tasks (with close matches).
    """
    from lm_eval.tasks import TaskManager

    from ablate.mask import original_tasks

    local: dict[str, dict] = {}
    for d in task_dirs:
        local.update(local_task_configs(d))
    remote = [t for t in tasks if t not in local]
    # skip the 5 s scan of lm-eval's own tasks when none is asked for
    tm = TaskManager(
        include_defaults=any(t not in original_tasks.NAMES for t in remote),
        include_path=str(original_tasks.TASK_DIR) if remote else None,
    )
    unknown = [t for t in remote if t not in tm.all_tasks]
    if unknown:
        known = list(local) + tm.all_tasks
        hints = {t: difflib.get_close_matches(t, known, n=3) for t in unknown}
        raise TaskNotFoundError(
            "unknown task(s): "
            + "; ".join(
                f"{t!r}" + (f" (did you mean {', '.join(h)}?)" if h else "")
                for t, h in hints.items()
            )
            + (f". Local tasks: {', '.join(sorted(local))}" if local else "")
        )
    try:
        pins = {t: d["revision"] for t, d in (datasets or {}).items() if t in remote}
        specs = [
            local[t] if t in local else pinned_config(tm, t, pins[t]) if t in pins else t
            for t in tasks
        ]
        loaded = tm.load(specs)
    except (
        Exception
    ) as exc:  # datasets hides the file and row in __cause__ (DatasetGenerationError)
        files = [f for t in tasks if t in local for f in data_file_list(local[t])]
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise TaskFileError(
            f"cannot load task(s) {', '.join(tasks)}: {type(exc).__name__}: {exc}{cause}"
            + (f"; local data files: {', '.join(files)}" if files else "")
        ) from exc
    used_local = {t: local[t] for t in tasks if t in local}
    for t in used_local:  # a doc without a valid gold answer would be scored silently wrong
        _check_local_docs(t, loaded["tasks"][t], used_local[t])
    return loaded["tasks"], used_local, tm


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
    files = (cfg.get("dataset_kwargs") or {}).get("data_files") or []
    if isinstance(files, dict):
        files = list(files.values())
    flat: list[str] = []
    for f in files if isinstance(files, list) else [files]:
        flat.extend(f if isinstance(f, list) else [f])
    return flat
