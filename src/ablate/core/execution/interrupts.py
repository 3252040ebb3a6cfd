"""What an interrupt costs: a training job stops at the end of its current step with a complete
checkpoint (a rerun resumes there), and an interrupt sent to Snakemake alone reaches its
jobs as a terminal's Ctrl-C would.

Snakemake 9 on SIGINT signals none of its local jobs (docs/reliability.md, [F16]); on SIGTERM it
waits and records them as finished, so that one is left alone. A repeat of the signal within
:data:`SAME_INTERRUPT_S` is the same interrupt (a terminal's Ctrl-C plus Snakemake forwarding it);
a later one stops at once. No torch: the Snakefile imports it at parse time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

SAME_INTERRUPT_S = 2.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint to resume from."""


def forward_sigint_to_jobs() -> None:
    """In Snakemake's process: a SIGINT first goes on to every child process (its local jobs),
    then Snakemake stops as on Ctrl-C; a second is Python's default again, an ignored one
    (`nohup`) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return

    def forward(signum, frame):
        import psutil

        signal.signal(signal.SIGINT, signal.default_int_handler)
        for child in psutil.Process(os.getpid()).children(recursive=True):
            with contextlib.suppress(psutil.Error):  # ended meanwhile
                child.send_signal(signal.SIGINT)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, forward)


class InterruptWatch:
    """In a training job: the first SIGINT or SIGTERM asks the loop to save a checkpoint at the end
    of the current step and stop with :class:`TrainingInterrupted` (its rerun resumes there)."""

    def __init__(self):
        self.signal: signal.Signals | None = None
        self.holding = False
        self._at = 0.0
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.signal is None:
            self.signal, self._at = signal.Signals(signum), time.monotonic()
            then = (
                "the training is finished: writing its outputs first, then stopping; send it "
                "again to stop at once"
                if self.holding
                else "saving a checkpoint at the end of this step, then stopping (a rerun "
                "resumes from it; send it again to stop at once)"
            )
            print(f"[interrupt] {self.signal.name}: {then}", flush=True)
        elif time.monotonic() - self._at > SAME_INTERRUPT_S:
            self.restore()
            raise KeyboardInterrupt

    def __enter__(self) -> InterruptWatch:
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def hold(self) -> None:
        """The training has ended: a signal now waits until the job's outputs are complete."""
        self.holding = True

    def install(self) -> None:
        if self._previous:
            return  # installed already (by the job's driver, around the loop and its outputs)
        if threading.current_thread() is threading.main_thread():
            # an ignored signal (nohup) stays ignored
            handled = [s for s in _SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
            self._previous = {s: signal.signal(s, self._handle) for s in handled}

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def requested(self) -> bool:
        """Whether this or another data-parallel process got the signal: every process stops at
        the same step (the checkpoint's saves are collectives)."""
        from ablate.core.execution import parallel

        return parallel.any_process(self.signal is not None)

    def interrupted(self, step: int) -> TrainingInterrupted:
        self.restore()
        by = self.signal.name if self.signal is not None else "another process's signal"
        return TrainingInterrupted(
            f"training stopped by {by} after step {step}; "
            f"checkpoint-{step} is saved and a rerun resumes from it"
        )
