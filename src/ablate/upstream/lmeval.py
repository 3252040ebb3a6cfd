"""lm-eval's private names the package uses, and its one patch, pinned to lm-eval 0.4.13
(pyproject.toml).

1. ``lm_eval.tasks._yaml_loader.load_yaml`` (:func:`load_task_yaml`): a task's YAML as lm-eval
   builds the task from it, for ``mask/lm_tasks.py`` ``pinned_config``; there is no public loader
   (``lm_eval.utils`` lost ``load_yaml_config``). Test:
   ``test_lmeval.py::test_load_task_yaml_resolves_includes``.
2. ``lm_eval.evaluator.add_env_info`` replaced for a run (:func:`without_env_info`):
   ``simple_evaluate`` ends every run with torch's environment report (subprocesses: 0.5 s) and
   has no switch for it; the record keeps its own provenance (``mask/evaluation.py``). Test:
   ``test_lmeval.py::test_without_env_info``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


def load_task_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The task config at ``path``: includes merged, ``!function`` tags resolved (touch 1)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=True)


@contextlib.contextmanager
def without_env_info() -> Iterator[None]:
    """Within: ``simple_evaluate`` adds no environment report to its results (touch 2)."""
    import lm_eval.evaluator as evaluator

    report, evaluator.add_env_info = evaluator.add_env_info, lambda results: None
    try:
        yield
    finally:
        evaluator.add_env_info = report
