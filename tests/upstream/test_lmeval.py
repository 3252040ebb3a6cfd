"""ablate.upstream.lmeval: each touch of lm-eval's private names, checked against the pinned
lm-eval (0.4.13). A failure here means the pinned version changed what the package relies on:
adapt the touch in src/ablate/upstream/lmeval.py (its docstring's list names the callers)."""

from __future__ import annotations

import inspect

from ablate.upstream import lmeval


def test_load_task_yaml_resolves_includes(tmp_path):
    """Touch 1: the task's ``include`` merged under its own keys, ``!function`` a callable."""
    (tmp_path / "utils.py").write_text("def process(doc):\n    return doc\n")
    (tmp_path / "base.yaml").write_text(
        "dataset_path: base/data\nnum_fewshot: 5\noutput_type: generate_until\n"
    )
    (tmp_path / "task.yaml").write_text(
        "include: base.yaml\ntask: demo\nnum_fewshot: 0\nprocess_docs: !function utils.process\n"
    )
    cfg = lmeval.load_task_yaml(tmp_path / "task.yaml")
    assert cfg["task"] == "demo" and cfg["dataset_path"] == "base/data"
    assert cfg["num_fewshot"] == 0  # the task's own key wins over the include's
    assert callable(cfg["process_docs"]) and cfg["process_docs"]({"a": 1}) == {"a": 1}


def test_without_env_info():
    """Touch 2: ``simple_evaluate`` calls the module's ``add_env_info`` by name (so replacing the
    module attribute takes effect); within, it adds nothing; after, lm-eval's is back."""
    import lm_eval.evaluator as evaluator

    assert "add_env_info" in inspect.unwrap(evaluator.simple_evaluate).__code__.co_names
    assert "add_env_info(results)" in inspect.getsource(evaluator.simple_evaluate)
    report = evaluator.add_env_info
    with lmeval.without_env_info():
        out: dict = {}
        evaluator.add_env_info(out)
        assert out == {}
    assert evaluator.add_env_info is report
