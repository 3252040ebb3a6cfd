"""The planner's schedule (ablate.core.planner.schedule): jobs side by side on a setup's GPUs."""

from __future__ import annotations


def test_makespan_runs_independent_jobs_side_by_side():
    from ablate.core.planner.schedule import Slot, makespan

    jobs = [
        Slot("a", 10, 1, []),
        Slot("b", 5, 1, ["a"]),
        Slot("c", 7, 1, ["a"]),
        Slot("d", 4, 2, ["b"]),  # needs both devices: waits for c to free its own
        Slot("e", 3, 1, None),  # no dependencies named: after every earlier job
    ]
    assert makespan(jobs, 1) == 10 + 5 + 7 + 4 + 3
    assert makespan(jobs, 2) == 10 + 7 + 4 + 3
    assert makespan(jobs, 8) == 10 + 5 + 4 + 3  # d starts once b is done; e after all
