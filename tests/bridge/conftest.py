"""Fixtures of the bridge tests that more than one test module reads: four fabricated finished
runs (a summary, a benchmark and scored samples each), the embedded study's bridge section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import bridge_config, run_summary

from ablate.core.outputs import io


@pytest.fixture
def runs(tmp_path):
    """Runs r1a (final 0.8), r1b (0.3), r2a (0.4), r2b (0.6): summaries, benchmarks, samples."""
    finals = {"r1a": 0.8, "r1b": 0.3, "r2a": 0.4, "r2b": 0.6}
    ks = {"r1a": 8, "r1b": 8, "r2a": 4, "r2b": 6}
    summaries, benches, samples = {}, {}, {}
    rng = np.random.default_rng(0)
    for run_id, final in finals.items():
        d = tmp_path / run_id
        summaries[run_id] = io.write_json(
            d / "summary.json", run_summary(run_id, 0.9, final, ks[run_id])
        )
        benches[run_id] = d / "bench.tsv"
        benches[run_id].write_text("s\th:m:s\n36.0\t0:00:36\n")
        correct = rng.random(200) < final
        samples[run_id] = io.write_frame(
            d / "samples.parquet",
            pd.DataFrame({"id": [f"q{i}" for i in range(200)], "correct": correct}),
        )
    return summaries, benches, samples


@pytest.fixture
def bridge():
    """The bridge section of the embedded study's config (a fresh copy)."""
    return bridge_config()
