"""The planner's inputs (ablate.core.planner.inputs): the measurements file's data-parallel speed-ups."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.core.planner.inputs import Reference

REPO = Path(__file__).resolve().parents[3]


def test_a_data_parallel_speedup_comes_from_the_measured_scaling_rows():
    """The measurements file's scaling rows: a measured GPU count as measured; another from the
    row of the most GPUs (a fixed exchange per step: n / (1 + x (n - 1))), marked extrapolated
    beyond it; a recipe or mode never measured: None (the plan falls back to plan.scaling)."""
    ref = Reference.load(REPO / "config" / "gpu_measurements.yaml")
    args = ("train", "sharded_masters", False, "H100 SXM", 3.43e9)
    assert ref.speedup(*args, 2)[0] == pytest.approx(1.94)
    four = next(r for r in ref.scaling if (r.packing, r.gpus) == (False, 4))
    x = (4 / four.speedup - 1) / 3
    eight, how = ref.speedup(*args, 8)
    assert eight == pytest.approx(8 / (1 + 7 * x)) and how.startswith("extrapolated from 3.49x")
    assert ref.speedup(*args, 3)[1].startswith("interpolated")
    assert ref.speedup("train", "sharded_weights", False, "H100 SXM", 3.43e9, 2) is None
