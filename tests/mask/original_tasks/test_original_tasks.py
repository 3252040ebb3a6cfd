"""The original study's tasks as lm-eval tasks (ablate.mask.original_tasks): their YAMLs score
the validation split, and their hub datasets as the YAMLs name them."""

from __future__ import annotations

from ablate.mask import original_tasks


def test_lm_evals_arc_scores_the_test_split_the_original_validation():
    """The split of every original task is validation (eval_mcq.py --split validation); lm-eval's
    arc tasks score test (its hellaswag, piqa and winogrande have no test split)."""
    from pathlib import Path

    import lm_eval
    import yaml

    arc = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks/arc/arc_easy.yaml").read_text())
    assert arc["test_split"] == "test"
    for name in original_tasks.NAMES:
        text = (original_tasks.TASK_DIR / f"{name}.yaml").read_text()
        assert "validation_split: validation\ntest_split: null\n" in text, name


def test_datasets_are_the_hub_datasets_the_yamls_name_unpinned():
    """Each task's dataset as its YAML names it (``!function`` tags read as text, no lm-eval
    import); the revision is left to the lock (ablate.mask.tasks.pinned_datasets)."""
    got = original_tasks.datasets()
    assert tuple(got) == original_tasks.NAMES
    assert got["arc_challenge_original"] == {
        "path": "allenai/ai2_arc",
        "name": "ARC-Challenge",
        "revision": None,
    }
    assert got["hellaswag_original"] == {"path": "Rowan/hellaswag", "name": None, "revision": None}
    assert got["winogrande_original"]["name"] == "winogrande_xl"
