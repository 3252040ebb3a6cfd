"""Stall watchdog: a training job whose steps stop (an NCCL or data-loader hang, a deadlock) is
failed within a bound instead of holding its GPU, and billing, until someone looks.

It runs in the job itself, so it applies locally, under SLURM and on Vast; :data:`STALL_EXIT`
has Snakemake's ``retries`` rerun the job from its last checkpoint. A hang that holds the GIL
stops this thread too: ``faulthandler``, which needs no GIL, is armed at 1.5 x the bound.
"""

from __future__ import annotations

import faulthandler
import os
import statistics
import sys
import threading
import time
from typing import Any

from ablate.core.training.params import LoopParams

STALL_EXIT = 75  # EX_TEMPFAIL: a retry may succeed
STALL_FACTOR = 2.0
STALL_MIN_S = 300.0
STALL_START_S = 1800.0
_TIMED_STEPS = 3  # steps timed (after the first) before the forecast replaces the start bound


def stall_bound(params: LoopParams, step_times: list[float]) -> tuple[float, str]:
    """The bound in seconds and, in words, what it was derived from."""
    if params.stall_s:
        return float(params.stall_s), f"stall_s: {params.stall_s} (config)"
    timed = step_times[1:]
    if len(timed) < _TIMED_STEPS:
        return (
            STALL_START_S,
            f"start bound {STALL_START_S:.0f} s (the first steps are not timed yet)",
        )
    interval, what = next(
        (
            (getattr(params, k), k)
            for k in ("save_steps", "eval_steps", "logging_steps")
            if getattr(params, k)
        ),
        (1, "one step"),
    )
    step_s = statistics.median(timed)
    derived = STALL_FACTOR * step_s * interval
    bound = max(STALL_MIN_S, derived)
    return bound, (
        f"{STALL_FACTOR:g} x {step_s:.3g} s/step (forecast from {len(timed)} steps) x {what} "
        f"{interval} = {derived:.0f} s, at least {STALL_MIN_S:.0f} s"
    )


def _fault_file() -> Any:
    """stderr, or the original stderr where sys.stderr has no file descriptor (faulthandler needs
    one)."""
    try:
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__


class StallWatchdog:
    """Ends the process when no training progress (:meth:`progress`) came for the bound."""

    def __init__(self, params: LoopParams, step_times: list[float], label: str):
        self.params, self.step_times, self.label = params, step_times, label
        self._last = time.monotonic()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def progress(self) -> None:
        self._last = time.monotonic()
        bound, _ = stall_bound(self.params, self.step_times)
        faulthandler.dump_traceback_later(1.5 * bound + 30, exit=True, file=_fault_file())

    def _watch(self) -> None:
        while not self._done.wait(1.0):
            bound, why = stall_bound(self.params, self.step_times)
            idle = time.monotonic() - self._last
            if idle > bound:
                print(
                    f"[{self.label}] stalled: no training progress for {idle:.0f} s, over the "
                    f"stall bound {bound:.0f} s ({why}); failing the job so that it is retried "
                    "from its last checkpoint",
                    file=sys.stderr,
                    flush=True,
                )
                faulthandler.dump_traceback(file=_fault_file(), all_threads=True)
                sys.stdout.flush()
                os._exit(STALL_EXIT)

    def start(self) -> None:
        self.progress()
        self._thread = threading.Thread(target=self._watch, name="stall-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        faulthandler.cancel_dump_traceback_later()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
