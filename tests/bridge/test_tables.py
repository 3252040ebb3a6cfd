"""The bridge study's tables (ablate.bridge.tables): the per-entry summary on small fabricated
runs (the fixture ``runs``, tests/bridge/conftest.py) (fast)."""

from __future__ import annotations

import pytest
from helpers import BRIDGE_ENTRIES as ENTRIES

from ablate.bridge import tables


def test_summary_maps_same_as_to_its_twin(runs, tmp_path):
    summaries, benches, _ = runs
    summary, curves = tables.build_summary(ENTRIES, summaries, benches, gpus=4)
    s = summary.set_index("entry")
    assert s.loc["2c", "run_id"] == "r1a" and s.loc["2c", "reuses"] == "1a"
    assert s.loc["2c", "final"] == s.loc["1a", "final"] == 0.8
    assert s.loc["1b", "degradation"] == pytest.approx(0.6)
    assert s.loc["2a", "compression_ratio"] == 6.0
    assert s.loc["1a", "gpu_hours"] == pytest.approx(36.0 * 4 / 3600)
    assert set(curves["entry"]) == set(ENTRIES)


def test_summary_refuses_a_file_of_another_run(runs):
    summaries, benches, _ = runs
    summaries = {**summaries, "r1b": summaries["r1a"]}
    with pytest.raises(ValueError, match="records run r1a, not r1b"):
        tables.build_summary(ENTRIES, summaries, benches, gpus=0)


# ------------------------------------------------------------------ hub data (no network)
