"""The evaluation's task names, checked when the config is parsed: a misspelled hub task must fail
the dry run here, not the first evaluation on a rented GPU.

lm-eval knows its tasks only by scanning its YAMLs (seconds to tens of seconds), too slow for every
parse of the Snakefile, so the index is cached per lm-eval version in ``$XDG_CACHE_HOME/ablate/``
(built from the installed package, no network). It holds each task's hub dataset, which
:func:`pinned_datasets` pins to a commit so the evaluation's run key and record name it.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from ablate.core.config import ConfigError
from ablate.core.outputs.io import user_cache_dir as cache_dir


def _dataset_of(entry: Any) -> dict[str, Any] | None:
    """A YAML task's hub dataset (``path``, ``name``, its YAML's revision); None for a group, a
    tag, a Python-class task, ``data_files`` or a local folder."""
    cfg = getattr(entry, "cfg", None) or {}
    path, kwargs = cfg.get("dataset_path"), cfg.get("dataset_kwargs") or {}
    if not path or "task" not in cfg or "class" in cfg or "data_files" in kwargs:
        return None
    if os.path.exists(os.path.expanduser(str(path))):
        return None
    return {"path": path, "name": cfg.get("dataset_name"), "revision": kwargs.get("revision")}


def _cache_file(cache: str | os.PathLike | None) -> Path:
    return Path(cache or cache_dir()) / f"lm_eval-{metadata.version('lm_eval')}-tasks.json"


def _cached(path: Path) -> dict[str, dict[str, Any] | None] | None:
    """The index in the cache file ``path``; None where there is none (or an older cache)."""
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def _index(cache: str | os.PathLike | None = None) -> dict[str, dict[str, Any] | None]:
    """Task, group and tag name -> its hub dataset, from the cache (else built and cached)."""
    from ablate.core.outputs.io import write_json

    path = _cache_file(cache)
    index = _cached(path)
    if index is not None:
        return index
    from lm_eval.tasks import TaskManager

    tm = TaskManager()
    index = {n: _dataset_of(tm.task_index.get(n)) for n in sorted(tm.all_tasks)}
    try:
        write_json(path, index, indent=None)
    except OSError:
        pass
    return index


def _with_original_tasks(index: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """lm-eval's index and the original study's tasks (:mod:`ablate.mask.original_tasks`)."""
    from ablate.mask import original_tasks

    return {**index, **original_tasks.datasets()}


def lm_eval_task_index(cache: str | os.PathLike | None = None) -> frozenset[str]:
    """Every task, group and tag name lm-eval knows, and the original study's tasks."""
    return frozenset(_with_original_tasks(_index(cache)))


def cached_task_index(cache: str | os.PathLike | None = None) -> frozenset[str] | None:
    """:func:`lm_eval_task_index` where the cache holds it, else None: a caller that builds
    lm-eval's TaskManager anyway should not index every task YAML twice (20 s on a CPU)."""
    index = _cached(_cache_file(cache))
    return None if index is None else frozenset(_with_original_tasks(index))


def pinned_datasets(
    names: Iterable[str], results: str | os.PathLike | None
) -> dict[str, dict[str, Any]]:
    """Each of the tasks ``names`` that loads a hub dataset -> ``{path, name, revision}``, its
    revision (its YAML's, else ``main``) resolved to a commit by the hub revisions' lock in
    ``results``."""
    from ablate.core.outputs import hub_revisions

    index = _with_original_tasks(_index())
    out = {}
    for name in names:
        ds = index.get(name)
        if ds:
            rev = hub_revisions.resolve(ds["path"], ds["revision"], results, "dataset")
            out[name] = {**ds, "revision": rev}
    return out


#: The config key of the user's own task folders.
OWN_TASKS_KEY = "mask.eval.task_dirs"


def own_tasks(dirs: Iterable[str | os.PathLike]) -> dict[str, list[str]]:
    """Task name -> its files (its YAML, then its local data files: the evaluations' inputs, a
    data file relative to the working directory when under it) of every ``*.yaml`` in ``dirs``
    (config ``mask.eval.task_dirs``); a ConfigError naming the key for a bad folder or task."""
    from ablate.mask.lm_tasks import TaskFileError, data_file_list, local_tasks

    found: dict[str, list[str]] = {}
    for d in dirs:
        if not Path(d).is_dir():
            raise ConfigError(f"invalid config at {OWN_TASKS_KEY}: {d} is not a folder")
        try:
            tasks = local_tasks(d)
        except (TaskFileError, FileNotFoundError) as exc:
            raise ConfigError(f"invalid config at {OWN_TASKS_KEY}: {exc}") from None
        if not tasks:
            raise ConfigError(f"invalid config at {OWN_TASKS_KEY}: {d} holds no *.yaml task")
        for name, task in sorted(tasks.items(), key=lambda t: t[1].yaml):  # by file, as read
            if name in found:
                raise ConfigError(
                    f"invalid config at {OWN_TASKS_KEY}: task {name} is in {found[name][0]} "
                    f"and {task.yaml}"
                )
            data = [_relative(f) for f in data_file_list(task.config)]
            found[name] = [str(task.yaml), *data]
    return found


def _relative(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _unknown(names: list[str], known: Iterable[str], what: str, quote: bool) -> list[str]:
    """``<name> is not <what> (did you mean <the closest known name>?)`` per unknown name."""
    known = sorted(known)
    problems = []
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{repr(name) if quote else name} is not {what}{hint}")
    return problems


def check_task_names(
    names: Iterable[str],
    *,
    embedded: bool = False,
    own: Iterable[str] = (),
    cache: str | os.PathLike | None = None,
) -> None:
    """ConfigError for each of ``names`` (config ``mask.eval.tasks``) that is no task of the
    embedded world (``embedded``) or of lm-eval, nor one of ``own``, with the closest known names;
    and for an own task that would shadow one of those."""
    names, own = list(names), set(own)
    kind = "an embedded" if embedded else "an lm-eval"
    if embedded:  # the embedded world's tasks are known without lm-eval's index
        from ablate.mask.embedded import TASK_NAMES as index
    else:
        index = lm_eval_task_index(cache)
    what = f"{kind} task" + (f" nor in {OWN_TASKS_KEY}" if own else "")
    shadow = sorted(own & set(index))
    if shadow:
        raise ConfigError(
            f"invalid config at {OWN_TASKS_KEY}: {', '.join(shadow)} is already {kind} task: "
            "name yours another way"
        )
    problems = _unknown(names, [*index, *own], what, quote=not embedded)
    if problems and embedded:  # what the embedded world has
        problems[-1] += f" (mask.data.source: embedded has {', '.join(sorted(index))})"
    if problems:
        raise ConfigError(f"invalid config at mask.eval.tasks: {'; '.join(problems)}")
