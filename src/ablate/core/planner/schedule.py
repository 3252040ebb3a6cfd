"""A study's wall time on one machine of N GPUs: its jobs side by side where their inputs allow.

A greedy list schedule in the study's job order (a topological order): a job starts at the
earliest time when the jobs it reads are done and its GPUs are free for its whole duration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Slot:
    id: str
    seconds: float
    gpus: int  # devices it holds (at least 1, at most the machine's)
    after: list[str] | None  # the jobs whose outputs it reads; None: every earlier job


def _busy(placed: list[tuple[float, float, int]], t0: float, t1: float) -> int:
    """Most devices in use at once during [t0, t1)."""
    times = [t0] + [s for s, _, _ in placed if t0 < s < t1]
    return max(sum(g for s, e, g in placed if s <= t < e) for t in times)


def makespan(slots: list[Slot], gpus: int) -> float:
    """Seconds from the first job's start to the last one's end on ``gpus`` devices."""
    placed: list[tuple[float, float, int]] = []
    end: dict[str, float] = {}
    for job in slots:
        deps = list(end) if job.after is None else [a for a in job.after if a in end]
        ready = max((end[d] for d in deps), default=0.0)
        need = max(1, min(job.gpus, gpus))
        starts = sorted({ready} | {e for _, e, _ in placed if e > ready})
        start = next(t for t in starts if _busy(placed, t, t + job.seconds) + need <= gpus)
        placed.append((start, start + job.seconds, need))
        end[job.id] = start + job.seconds
    return max(end.values(), default=0.0)
