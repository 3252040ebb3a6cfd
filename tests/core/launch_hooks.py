"""Per-process hooks for runs under ablate.core.execution.parallel.launch (its ``reporters``
argument: each returns the training loop's reporters of its process), in a module that imports no
test module: one imported there would change the run (tests/mask/test_training.py sets torch's
thread count at import, and so the float sums)."""

from __future__ import annotations

import os
import signal

from ablate.core.execution import parallel
from ablate.core.training import adafactor


class _SignalBefore:
    """A reporter that sends its own process SIGTERM once, as it reports step ``step - 1``: after
    that step's end-of-step check, so the loop sees the signal at the end of step ``step`` (the
    run logs every step: ``logging_steps: 1``)."""

    def __init__(self, step: int):
        self.step, self.sent = step, False

    def begin(self, step: int) -> None:
        pass

    def log(self, step: int, logs: dict, tokens: int) -> None:
        if step + 1 == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    def end(self) -> None:
        pass


def sigterm_to_process_1(step: int) -> list:
    """Process 1 alone sends itself SIGTERM as ``step`` begins (a signal that reached one process
    of a data-parallel run, or reached it a step after the others)."""
    return [_SignalBefore(step)] if parallel.rank() == 1 else []


def skip_cross_shard_reduce() -> list:
    """This process's sharded Adafactor skips its cross-shard reductions: each sum over the
    sharded dim is its own rows' (no reporters)."""
    adafactor.shard_sums = lambda partials, group: partials
    return []
