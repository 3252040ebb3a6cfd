"""What an interrupt costs (ablate.core.execution.interrupts): the training job's watch asks for a
checkpoint and a stop at the first signal, a second one stops at once, and its handlers go back
after. A real finetune interrupted: tests/pipeline/test_reliability.py; a job log's last line:
test_job_interrupts.py."""

from __future__ import annotations

import os
import signal

import pytest

from ablate.core.execution import interrupts


@pytest.fixture
def sigint_handled():
    """SIGINT as in a terminal (a background test run may have it ignored, which the watch keeps)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("sigint_handled")
def test_the_first_signal_asks_for_a_stop_after_the_step(capsys):
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.InterruptWatch() as watch:
        assert watch.signal is None and not watch.requested()
        os.kill(os.getpid(), signal.SIGTERM)  # the job goes on: no exception
        assert watch.signal is signal.SIGTERM and watch.requested()
        assert "[interrupt] SIGTERM: saving a checkpoint at the end of this step" in (
            capsys.readouterr().out
        )
        err = watch.interrupted(7)
    assert isinstance(err, interrupts.TrainingInterrupted)
    assert str(err) == (
        "training stopped by SIGTERM after step 7; checkpoint-7 is saved and a rerun resumes from it"
    )
    assert signal.getsignal(signal.SIGTERM) == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


@pytest.mark.usefixtures("sigint_handled")
def test_a_signal_after_the_training_waits_for_the_outputs(capsys, monkeypatch):
    """Held (the training ended): the first signal says the outputs come first; a second one
    within SAME_INTERRUPT_S is the same interrupt (a terminal's Ctrl-C reaches every process of the
    group), one later stops at once."""
    with interrupts.InterruptWatch() as watch:
        watch.hold()
        os.kill(os.getpid(), signal.SIGINT)
        assert "the training is finished: writing its outputs first" in capsys.readouterr().out
        os.kill(os.getpid(), signal.SIGINT)  # the same Ctrl-C, a moment later: still waits
        monkeypatch.setattr(interrupts, "SAME_INTERRUPT_S", -1.0)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored at once


def test_an_ignored_signal_stays_ignored():
    """A background (nohup) job has SIGINT ignored: the watch does not take it over."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.InterruptWatch():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            interrupts.forward_sigint_to_jobs()
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("sigint_handled")
def test_snakemakes_sigint_reaches_its_jobs_first(monkeypatch):
    """In Snakemake's process: SIGINT goes on to every child (its local jobs), then Snakemake
    stops as on Ctrl-C, and a second SIGINT is Python's default again."""
    import psutil

    sent = []

    class Child:
        def send_signal(self, signum):
            sent.append(signum)

    class Me:
        def __init__(self, pid):
            assert pid == os.getpid()

        def children(self, recursive):
            assert recursive
            return [Child(), Child()]

    monkeypatch.setattr(psutil, "Process", Me)
    interrupts.forward_sigint_to_jobs()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert sent == [signal.SIGINT, signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
