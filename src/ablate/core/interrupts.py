"""What an interrupt costs: a training job stops at the end of its current step with a complete
Trainer checkpoint (a rerun resumes there), and an interrupt sent to Snakemake alone reaches its
jobs as a terminal's Ctrl-C would.

Snakemake 9 on SIGINT (``KeyboardInterrupt`` in its scheduler: "Terminating processes on user
request") shuts its local job pool down, which waits for the running jobs; it signals none of
them. A terminal's Ctrl-C reaches them anyway (the whole foreground process group gets it), but
``kill -INT <snakemake pid>`` in a script does not: a finetune then ran on to its end, and
Snakemake, already cancelling, left it marked incomplete, so the rerun redid the finished work.
:func:`forward_sigint_to_jobs` (installed when the Snakefile is parsed) sends the SIGINT on to
Snakemake's child processes first. On SIGTERM Snakemake waits for its running jobs and records
them as finished (its graceful exit), so that one is left alone.

In a training job, the callback of :func:`save_on_interrupt` turns the first SIGINT or SIGTERM into: finish the
step, save a complete Trainer checkpoint (also with ``save_steps: 0``), stop with
:class:`TrainingInterrupted`, so the job fails, writes no result, and its rerun resumes from that
checkpoint. A repeat of the signal within :data:`SAME_INTERRUPT_S` is the same interrupt (a
terminal's Ctrl-C plus Snakemake forwarding it); a later one stops at once. Data-parallel, every
process stops and saves at the same step, whichever of them got the signal
(:func:`ablate.core.parallel.any_process` at each step's end): the saves are collectives.

Imports no torch or transformers at module level: the Snakefile imports it at parse time.
"""

from __future__ import annotations

import os
import signal
import threading
import time

SAME_INTERRUPT_S = 2.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint to resume from."""


def forward_sigint_to_jobs() -> None:
    """In Snakemake's process: a SIGINT first goes on to every child process (its local jobs),
    then Snakemake stops as on Ctrl-C. A second SIGINT is Python's default again. An ignored
    SIGINT (`nohup`, a background job of a script) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return

    def forward(signum, frame):
        import psutil

        signal.signal(signal.SIGINT, signal.default_int_handler)
        for child in psutil.Process(os.getpid()).children(recursive=True):
            try:
                child.send_signal(signal.SIGINT)
            except psutil.Error:
                pass  # ended meanwhile
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, forward)


def save_on_interrupt():
    """A Trainer callback: on SIGINT or SIGTERM during training, save a checkpoint at the end of
    the current step and stop with :class:`TrainingInterrupted` (module doc)."""
    from transformers import TrainerCallback

    class SaveOnInterrupt(TrainerCallback):
        def __init__(self):
            self.signal: signal.Signals | None = None
            self.stopping = False  # this or another data-parallel process got the signal
            self._at = 0.0
            self._previous: dict[int, object] = {}

        def _handle(self, signum, frame):
            if self.signal is None:
                self.signal, self._at = signal.Signals(signum), time.monotonic()
                print(
                    f"[interrupt] {self.signal.name}: saving a checkpoint at the end of this step, "
                    "then stopping (a rerun resumes from it; send it again to stop at once)",
                    flush=True,
                )
            elif time.monotonic() - self._at > SAME_INTERRUPT_S:
                self._restore()
                raise KeyboardInterrupt

        def _restore(self) -> None:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous = {}

        def on_train_begin(self, args, state, control, **kw):
            if threading.current_thread() is threading.main_thread():
                # an ignored signal (nohup) stays ignored
                handled = [s for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
                self._previous = {s: signal.signal(s, self._handle) for s in handled}

        def on_step_end(self, args, state, control, **kw):
            from ablate.core import parallel

            # data-parallel, every process stops at the same step (the checkpoint's saves are
            # collectives), also those the signal reached one step later, or not at all
            if parallel.any_process(self.signal is not None):
                self.stopping = True
                control.should_save = True
                control.should_training_stop = True

        def on_save(self, args, state, control, **kw):
            if self.stopping:
                self._restore()
                by = self.signal.name if self.signal is not None else "another process's signal"
                raise TrainingInterrupted(
                    f"training stopped by {by} after step {state.global_step}; "
                    f"checkpoint-{state.global_step} is saved and a rerun resumes from it"
                )

        def on_train_end(self, args, state, control, **kw):
            self._restore()

    return SaveOnInterrupt()
