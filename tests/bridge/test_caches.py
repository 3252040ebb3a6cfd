"""The frozen-state caches a grid needs (ablate.bridge.caches): one per key its runs share, what a
key holds (the teacher's definitions off their defaults) (fast)."""

from __future__ import annotations

from ablate.bridge import caches, grid
from ablate.bridge import params as bridge_params


def test_the_teacher_cache_key_holds_the_definitions_off_their_defaults():
    from helpers import bridge_config

    def typed(**kw):
        return bridge_params.check(bridge_params.resolve(kw))

    bridge = bridge_config()
    key = caches.teacher_key(bridge, "target", typed())
    assert not set(caches.TEACHER_DEFINITIONS) & set(key)  # the default's caches keep their ids
    for kw in (
        {"kl_teacher": "answer_only"},
        {"nll_labels": "original"},
        {"nll_labels": "original", "kl_rows": "original"},
        {"padding": "left"},
    ):
        other = caches.teacher_key(bridge, "target", typed(**kw))
        assert other == {**key, **kw}
        assert caches.states_params({"key": other, "batch": 4}).items() >= kw.items()


def test_runs_share_a_cache_unless_what_the_frozen_model_reads_differs(bridge):
    """An lr edit shares both caches (the largest eval_size, the smallest forward batch); another
    max_source_len is another source cache; no KL term, no teacher cache."""
    bridge["grid"] = {
        "a": {"eval_batch_size": 2},
        "b": {"lr": 2e-4, "eval_size": 8},
        "c": {"kl_weight": 0.0, "max_source_len": 64},
    }
    bridge["infer"] = {"entry": "a", "qa_entry": None, "n_samples": 8}
    study = grid.resolve(bridge)
    name = {e.run_id: n for n, e in study.entries.items()}
    found = caches.of_runs(bridge, study.runs)
    assert sorted(
        (s["what"], s["role"], [name[r] for r in s["runs"]], s["test_items"], s["batch"])
        for s in found.values()
    ) == [
        ("source", "source", ["a", "b"], 64, 2),
        ("source", "source", ["c"], 64, 64),
        ("teacher", "target", ["a", "b"], 0, 2),  # the teacher's rows are of the train split
    ]
    assert all(sid.startswith("gsm8k-") for sid in found)
    (key,) = [s["key"] for s in found.values() if s["runs"] == [study.entries["c"].run_id]]
    assert key == caches.states_key(bridge, "source", study.entries["c"].settings)
    assert key["max_source_len"] == 64 and "lr" not in key
