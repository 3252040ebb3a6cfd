"""The original study's prompt strings for its five tasks, as lm-eval tasks ``<task>_original``.

The original (qudent/ministral-prefill-mask-ablation, ``prefill_ablation/eval_mcq.py``) built its
own prompts on the validation splits; these YAMLs rebuild them with lm-eval's task machinery on
the hub datasets lm-eval's own tasks load (how they differ: docs/differences.md). Its rows and
length normalisation are the evaluation protocol's (``mask.eval.protocol``, ``acc_tokens``).
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
    """Task -> its hub dataset (``path``, ``name``, ``revision`` None), from its YAML: read with
    PyYAML (``!function`` tags left as text), as lm-eval's loader costs 2 s at every parse."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    out = {}
    for name in NAMES:
        cfg = yaml.load((TASK_DIR / f"{name}.yaml").read_text(), Loader=Loader)
        out[name] = {"path": cfg["dataset_path"], "name": cfg.get("dataset_name"), "revision": None}
    return out
