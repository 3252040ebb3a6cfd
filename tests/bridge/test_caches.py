"""The frozen-state caches a grid needs (ablate.bridge.caches): the teacher cache's key (fast)."""

from __future__ import annotations

from ablate.bridge import caches
from ablate.bridge import params as bridge_params


def test_the_teacher_cache_key_holds_the_definitions_off_their_defaults():
    from helpers import bridge_config

    bridge = bridge_config()
    p = bridge_params.resolve({})
    key = caches.teacher_key(bridge, "target", p)
    assert not set(caches.TEACHER_DEFINITIONS) & set(key)  # the default's caches keep their ids
    for kw in (
        {"kl_teacher": "answer_only"},
        {"nll_labels": "original"},
        {"nll_labels": "original", "kl_rows": "original"},
        {"padding": "left"},
    ):
        other = caches.teacher_key(bridge, "target", bridge_params.resolve(kw))
        assert other == {**key, **kw}
        assert caches.states_params({"key": other, "batch": 4}).items() >= kw.items()
