"""Per-process callbacks hooks for runs under ablate.core.parallel.launch (its ``callbacks``
argument), in a module that imports no test module: one imported there would change the run
(tests/mask/test_training.py sets torch's thread count at import, and so the float sums)."""

from __future__ import annotations

import os
import signal

from ablate.core import parallel
from ablate.core.training import adafactor


def sigterm_to_process_1(step: int) -> list:
    """Process 1 alone sends itself SIGTERM as ``step`` begins (a signal that reached one process
    of a data-parallel run, or reached it a step after the others)."""
    from transformers import TrainerCallback

    class Signal(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step + 1 == step:
                os.kill(os.getpid(), signal.SIGTERM)

    return [Signal()] if parallel.rank() == 1 else []


def skip_cross_shard_reduce() -> list:
    """This process's sharded Adafactor skips its cross-shard reductions: each mean over the
    sharded dim is its own rows' (no callbacks)."""
    adafactor.shard_mean = lambda total, local_count, count, group: total / max(local_count, 1)
    return []
