"""Where a job's seconds go (:mod:`ablate.core.outputs.phases`): the phases add up, a part of a
phase ("a.b") is not counted twice, the GPU's queued work counts in the phase that queued it, and a
phase that raises still counts."""

from __future__ import annotations

import time

import pytest

from ablate.core.outputs import phases


def test_phases_add_up_and_nest():
    ph = phases.Phases()
    with ph("load"):
        time.sleep(0.05)
    with ph("train"):
        time.sleep(0.05)
    ph.add("train.steps", 0.02)  # a part of "train": not counted twice
    time.sleep(0.02)
    d = ph.as_dict()
    assert list(d) == ["startup", "load", "train", "train.steps", "other", "total"]
    assert d["load"] >= 0.05 and d["train"] >= 0.05 and d["train.steps"] == 0.02
    assert d["other"] >= 0.015  # the sleep outside any phase
    inside = d["load"] + d["train"] + d["other"]
    assert d["total"] == pytest.approx(inside + d["startup"], abs=0.01)
    assert d["startup"] > 0  # this process started before the test


def test_sync_runs_as_a_phase_starts_and_ends_and_a_raising_phase_counts():
    calls = []
    ph = phases.Phases(sync=lambda: calls.append(len(ph.seconds)))
    with ph("load"):
        assert calls == [0]  # before the phase's own work
    assert calls == [0, 0]  # at its end, before its time is taken
    with pytest.raises(RuntimeError):
        with ph("train"):
            time.sleep(0.01)
            raise RuntimeError("the step failed")
    assert ph.seconds["train"] >= 0.01
    ph.add("train", 1.0)  # a phase entered twice adds up
    assert ph.seconds["train"] >= 1.01 and list(ph.seconds) == ["load", "train"]


def test_without_the_process_start_the_startup_is_unknown(monkeypatch):
    monkeypatch.setattr(phases, "process_started", lambda: None)
    ph = phases.Phases(started=time.time() - 2.0)
    d = ph.as_dict()
    assert d["startup"] is None
    assert d["total"] == pytest.approx(2.0, abs=0.1) and d["other"] == d["total"]
