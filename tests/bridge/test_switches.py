"""The training loop's switches (ablate.bridge.switches): one behaviour, one identity (fast)."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from pathlib import Path

import pytest

from ablate.bridge import params as bridge_params
from ablate.bridge import switches

BRIDGE_SRC = Path(switches.__file__).parent

# every combination of the settings the switches' conditions read, around their edges
EDGES = {
    "steps": (1, 4, 9),
    "eval_every": (1, 3, 9),
    "early_stopping": (True, False),
    "patience": (1, 3, 4),
    "warmup_steps": (0, 2, 9),
    "kl_weight": (0.0, 0.03),
    "kl_after_warmup": (True, False),
    "kl_positions": (20, 5),
}
GRID = [dict(zip(EDGES, values, strict=True)) for values in itertools.product(*EDGES.values())]


def resolved(**kw):
    return bridge_params.check(bridge_params.resolve(kw))


DEFAULTS = resolved()


def test_one_behaviour_is_one_identity():
    """Two settings with the same behaviour resolve alike, two with different ones do not,
    and the resolved setting behaves as the written one (the loop runs the resolved one)."""
    by_behaviour: dict[str, set[str]] = {}
    for kw in GRID:
        p = resolved(**kw)
        assert switches.behaviour(p) == switches.behaviour(replace(DEFAULTS, **kw))
        others = {k: v for k, v in p.as_dict().items() if k not in switches.SWITCHES}
        key = repr((others, switches.behaviour(p)))
        by_behaviour.setdefault(key, set()).add(repr({k: getattr(p, k) for k in switches.SWITCHES}))
    assert all(len(ids) == 1 for ids in by_behaviour.values()), by_behaviour


@pytest.mark.parametrize(
    "first, second",
    [
        ({"warmup_steps": 0}, {"warmup_steps": 0, "kl_after_warmup": False}),
        ({"steps": 40, "eval_every": 40}, {"steps": 40, "eval_every": 40, "patience": 7}),
        ({"steps": 40, "eval_every": 40}, {"steps": 40, "eval_every": 40, "early_stopping": False}),
    ],
)
def test_settings_that_cannot_act_are_reset(first, second):
    assert resolved(**first) == resolved(**second)


def test_settings_that_act_are_kept():
    assert resolved(warmup_steps=2) != resolved(warmup_steps=2, kl_after_warmup=False)
    assert resolved(patience=3) != resolved(early_stopping=False)  # evaluations at 40, 80, 120


def test_the_loop_reads_the_switches_only_through_this_module():
    """A switch read elsewhere would act without entering the behaviour the identity hashes
    (the values the behaviour carries, kl_positions where KL is on, are read where they act)."""
    conditions = set(switches.SWITCHES) - set(switches.behaviour(DEFAULTS))
    assert conditions == {"kl_after_warmup", "early_stopping", "patience", "kl_rows"}
    for path in BRIDGE_SRC.glob("*.py"):
        if path.name in ("switches.py", "params.py"):
            continue
        text = path.read_text()
        for key in conditions:
            # p["key"] (a dict's read) or p.key (the typed params')
            read = rf"\[[\"']{key}[\"']\]|\.{key}\b"
            assert not re.search(read, text), f"{path.name} reads {key}"


def test_the_group_is_the_process_batch_unless_set():
    def typed(**kw):
        return bridge_params.check(bridge_params.resolve(kw))

    p = typed(batch_size=40)
    assert p.infonce_group is None and switches.infonce_group(p) == 40
    assert switches.infonce_group(typed(batch_size=40, infonce_group=10)) == 10
    with pytest.raises(bridge_params.BridgeConfigError, match=r"bridge\.infonce_group = 3"):
        bridge_params.resolve({"batch_size": 40, "infonce_group": 3})
