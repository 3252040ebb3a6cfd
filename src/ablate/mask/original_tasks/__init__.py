"""The original study's prompt strings for its five tasks, as lm-eval tasks ``<task>_original``.

The original (qudent/ministral-prefill-mask-ablation, ``src/prefill_ablation/eval_mcq.py``) built
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
    """Task -> its hub dataset (``path``, ``name``, ``revision`` None), from its YAML."""
    from lm_eval.tasks._yaml_loader import load_yaml

    out = {}
    for name in NAMES:
        cfg = load_yaml(TASK_DIR / f"{name}.yaml", resolve_func=False)
        out[name] = {"path": cfg["dataset_path"], "name": cfg.get("dataset_name"), "revision": None}
    return out
