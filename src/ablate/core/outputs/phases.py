"""Where a job's seconds go: wall time per named phase, recorded in the job's output.

Each stage's JSON output carries ``phases``: seconds per phase in the order they ran, plus
``startup`` (process start to the stage function; a warm job's process starts at its fork) and
``other`` (the rest of the stage function); ``bench/tools/job_times.py`` prints them per job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def process_started() -> float | None:
    """Epoch seconds at which this process started, or None where the OS does not say."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # psutil missing or no access: the start-up phase is then unknown
        return None


class Phases:
    """Seconds per phase of one job; ``started`` is when the stage function began (epoch s).
    ``sync`` (``torch.cuda.synchronize``) runs as a phase starts and ends, so GPU work counts in
    the phase that queued it, not in the next one that waits for it."""

    def __init__(self, started: float | None = None, sync: Callable[[], None] | None = None):
        self.started = time.time() if started is None else started
        self.seconds: dict[str, float] = {}
        self.sync = sync or (lambda: None)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.sync()
        t0 = time.perf_counter()
        try:
            yield
            self.sync()
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def as_dict(self) -> dict[str, float | None]:
        """``startup``, the phases, ``other`` (unaccounted) and ``total`` (so far), to the ms."""
        proc = process_started()
        startup = None if proc is None else max(self.started - proc, 0.0)
        inside = time.time() - self.started
        timed = sum(v for k, v in self.seconds.items() if "." not in k)  # "a.b" is a part of "a"
        out: dict[str, float | None] = {"startup": startup, **self.seconds}
        out["other"] = max(inside - timed, 0.0)
        out["total"] = inside + (startup or 0.0)
        return {k: None if v is None else round(v, 3) for k, v in out.items()}
