"""The planner's history (ablate.core.planner.history): the seconds of a finished job's benchmark
file."""

from __future__ import annotations

import math

from helpers import EMBEDDED_RUN

from ablate.core.planner.history import benchmark_seconds


def test_benchmark_file_mean_of_repeats(tmp_path):
    f = tmp_path / "b.tsv"
    f.write_text("s\th:m:s\tmax_rss\n10.0\t0:00:10\t1\n20.0\t0:00:20\t1\n")
    assert benchmark_seconds(f) == 15.0
    assert benchmark_seconds(tmp_path / "none.tsv") is None
    assert math.isclose(
        benchmark_seconds(EMBEDDED_RUN / "results/benchmarks/finetune/5B.tsv"), 96.0
    )
