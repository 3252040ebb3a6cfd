"""The stop rules (ablate.core.training.monitor.StopRules) on fake logs: no learning, plateau,
a non-finite loss read once, a study evaluation's stop logged, the counters and stops
replayed from a resumed run's history."""

from __future__ import annotations

import pytest
import torch

from ablate.core.training.monitor import STOP, StopRules
from ablate.core.training.params import resolve_params


def rules(**kw):
    return StopRules(resolve_params(kw, "finetune"))


def test_no_learning_rule():
    r = rules(no_learning_steps=20, no_learning_min_gain=0.1)
    assert r.observe_train_loss(1, 2.0) is None
    assert r.observe_train_loss(10, 1.95) is None  # before N steps: not judged
    stop = r.observe_train_loss(20, 1.95)
    assert stop["reason"] == "no_learning" and stop["step"] == 20
    assert stop["detail"]["gain"] == pytest.approx(0.05)
    r = rules(no_learning_steps=20, no_learning_min_gain=0.1)
    r.observe_train_loss(1, 2.0)
    assert r.observe_train_loss(20, 1.5) is None and r.stop is None
    assert r.observe_train_loss(40, 2.5) is None  # judged once, at the first log after N


def test_plateau_rule_patience_delta_min_steps():
    r = rules(plateau_patience=2, plateau_min_delta=0.01, plateau_min_steps=500)
    assert r.observe_eval_loss(100, 1.0) is None
    assert r.observe_eval_loss(200, 0.995) is None  # within min_delta: no improvement (1 bad)
    assert r.observe_eval_loss(300, 0.999) is None  # 2 bad, but step < min_steps
    assert r.observe_eval_loss(400, 0.98) is None  # improved: counter reset
    assert r.observe_eval_loss(500, 0.979) is None
    stop = r.observe_eval_loss(600, 0.99)
    assert stop["reason"] == "plateau" and stop["step"] == 600
    assert stop["detail"]["best_step"] == 400 and stop["detail"]["evals_without_improvement"] == 2


def test_nonfinite_micro_loss_is_read_once_and_names_the_first_bad_step():
    """Micro-batch losses stay on the device until the loop asks (one sync); the stop names the
    first non-finite step."""
    r = rules()
    for step, loss in {1: 2.0, 2: float("nan"), 3: 1.5, 4: float("inf")}.items():
        r.watch_micro_loss(step, torch.tensor(loss))
    assert r.stop is None  # nothing read yet
    stop = r.nonfinite()
    assert stop["reason"] == "nonfinite" and stop["step"] == 2 and r.stop is stop
    assert stop["detail"]["step"] == 2 and stop["detail"]["value"] != stop["detail"]["value"]
    assert r.nonfinite() is None or r.stop is stop  # read: the queue is empty


def test_nonfinite_rule_and_replay():
    r = rules()
    assert r.observe_train_loss(5, float("nan"))["reason"] == "nonfinite"
    assert rules().observe_eval_loss(5, float("inf"))["reason"] == "nonfinite"
    # a resumed run rebuilds the counters from its log history
    r = rules(plateau_patience=2, plateau_min_delta=0.0, plateau_min_steps=0)
    history = [
        {"step": 1, "loss": 3.0},
        {"step": 10, "eval_loss": 1.0},
        {"step": 20, "eval_loss": 1.1},
    ]
    assert r.replay(history) is None and r.bad_evals == 1 and r.first_loss == 3.0
    assert r.observe_eval_loss(30, 1.2)["reason"] == "plateau"


def test_a_study_evaluations_stop_is_logged_and_replayed():
    """A study evaluation's stop (none of the loop's rules) is an entry of the log history, which
    a resume replays: a run that had stopped stays stopped."""
    r = rules()
    stop = {"reason": "early_stopping", "step": 4, "detail": {"patience": 2}}
    assert r.observe_evaluation(None) is None and r.stop is None
    entry = r.observe_evaluation(stop)
    assert r.stop == stop and entry == {"step": 4, STOP: stop}
    assert rules().replay([{"step": 1, "loss": 3.0}, entry]) == stop
