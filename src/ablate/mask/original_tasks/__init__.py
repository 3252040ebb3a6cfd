"""The original study's prompt strings for its five tasks, as lm-eval tasks ``<task>_original``.

The original (qudent/ministral-prefill-mask-ablation, its ``prefill_ablation/eval_mcq.py``) built
its own prompts: no ``Question: `` prefix, hellaswag's context with whitespace collapsed (not
lm-eval's clean-up), winogrande scored in full (the option word and the rest of the sentence after
the sentence up to the blank), the validation split of every task (lm-eval's arc scores the test
split). These YAMLs rebuild those strings with lm-eval's task machinery on the hub datasets
lm-eval's own tasks load (pinned like them: :func:`ablate.mask.tasks.pinned_datasets`); the
functions are :mod:`ablate.mask.original_tasks.prompts`. The original's rows and length
normalisation are the evaluation protocol's (config ``mask.eval.protocol``, metric
``acc_tokens``), not the tasks'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The folder of the task YAMLs (lm-eval's ``include_path``).
TASK_DIR = Path(__file__).parent
#: The tasks, each the original's version of the lm-eval task of the same stem.
NAMES = (
    "hellaswag_original",
    "piqa_original",
    "arc_easy_original",
    "arc_challenge_original",
    "winogrande_original",
)


def datasets() -> dict[str, dict[str, Any]]:
    """Task -> its hub dataset (``path``, ``name``, ``revision`` None), from its YAML.

    Read with PyYAML, its ``!function`` tags left as text: importing lm-eval's loader costs 2 s,
    and this runs at every parse of a config naming hub tasks."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    out = {}
    for name in NAMES:
        cfg = yaml.load((TASK_DIR / f"{name}.yaml").read_text(), Loader=Loader)
        out[name] = {"path": cfg["dataset_path"], "name": cfg.get("dataset_name"), "revision": None}
    return out
