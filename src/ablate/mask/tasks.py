"""The evaluation's task names, checked when the config is parsed: a misspelled hub task must fail
the dry run here, not the first evaluation on a rented GPU.

lm-eval knows its tasks only by scanning its YAML files (TaskManager: seconds, tens of seconds on a
busy machine), too slow for every parse of the Snakefile. The names are the same for one lm-eval
version, so they are cached per version in ``$XDG_CACHE_HOME/ablate/`` (``~/.cache/ablate/``).
No network: the index is built from the installed package.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from ablate.core.config import ConfigError


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ablate"


def lm_eval_task_index(cache: str | os.PathLike | None = None) -> frozenset[str]:
    """Every task, group and tag name lm-eval's TaskManager knows, from the cache when it holds
    this lm-eval version's index (else built and written there; an unwritable cache is skipped)."""
    from ablate.core.io import write_json

    path = Path(cache or cache_dir()) / f"lm_eval-{metadata.version('lm_eval')}-tasks.json"
    try:
        return frozenset(json.loads(path.read_text()))
    except (OSError, ValueError):
        pass
    from lm_eval.tasks import TaskManager

    names = sorted(TaskManager().all_tasks)
    try:
        write_json(path, names, indent=None)
    except OSError:
        pass
    return frozenset(names)


def check_task_names(
    names: Iterable[str], *, embedded: bool = False, cache: str | os.PathLike | None = None
) -> None:
    """Raise ConfigError naming each of ``names`` (config ``mask.eval.tasks``) that is not a task of
    the embedded world (``embedded``) or of lm-eval, with the closest known names."""
    names = list(names)
    if embedded:
        # the embedded world's tasks are known without lm-eval's index
        from ablate.mask.embedded import TASK_NAMES

        unknown = [n for n in names if n not in TASK_NAMES]
        if unknown:
            raise ConfigError(
                f"invalid config at mask.eval.tasks: {', '.join(unknown)} is not an embedded task "
                f"(mask.data.source: embedded has {', '.join(sorted(TASK_NAMES))})"
            )
        return
    index = lm_eval_task_index(cache)
    unknown = [n for n in names if n not in index]
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(index), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{name!r} is not an lm-eval task{hint}")
    raise ConfigError(f"invalid config at mask.eval.tasks: {'; '.join(problems)}")
