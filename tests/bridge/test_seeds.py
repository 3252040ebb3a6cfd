"""Seeds as a dimension of the bridge study: a grid entry's ``seeds`` become one entry and run id
per seed; the summary keeps a seed column; the claims on a seeded entry are pooled and per seed."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from helpers import BRIDGE_ENTRIES as ENTRIES
from helpers import bridge_config, run_summary

from ablate.bridge import claims, grid, layout, tables
from ablate.core.config import ConfigError
from ablate.core.outputs import io


def test_default_grid_has_no_seed_entries():
    study = grid.resolve(bridge_config())
    assert all(e.base is None and e.seed is None for e in study.entries.values())
    assert "1a" in study.entries and "1a-s0" not in study.entries


def test_seeds_expand_into_entries_and_runs():
    bridge = copy.deepcopy(bridge_config())
    bridge["grid"]["1a"] = {"seeds": [0, 1, 2]}
    study = grid.resolve(bridge)
    seeds = [study.entries[f"1a-s{s}"] for s in range(3)]
    assert [(e.base, e.seed, e.params["seed"]) for e in seeds] == [("1a", s, s) for s in range(3)]
    assert len({e.run_id for e in seeds}) == 3 and all(e.run_id in study.runs for e in seeds)
    assert study.runs[seeds[1].run_id].seed == 1  # the run's owner knows its seed
    # 2c is same_as 1a: one entry per seed, each reusing that seed's run
    twins = [study.entries[f"2c-s{s}"] for s in range(3)]
    assert [e.run_id for e in twins] == [e.run_id for e in seeds]
    assert twins[2].same_as == "1a-s2" and twins[2].base == "2c"
    # the benchmark runs the first seed of infer.entry
    assert dict((r, e.name) for r, e in study.infer)["entry"] == "1a-s0"
    jobs = layout.jobs({"bridge": bridge, "results": "results"}, study)
    train = [j for j in jobs if j.rule == "bridge_train"]
    assert len(train) == len(bridge_config()["grid"]) - 1 + 2  # 1a thrice, 2c none


def test_seeds_and_seed_exclude_each_other():
    bridge = copy.deepcopy(bridge_config())
    bridge["grid"]["1b"] = {"seeds": [0], "seed": 3}
    with pytest.raises(ConfigError, match=r"bridge\.grid\.1b: seeds and seed exclude"):
        grid.resolve(bridge)
    bridge["grid"]["1b"] = {"seeds": [0]}
    bridge["grid"]["1b-s0"] = {"K": 2}
    with pytest.raises(ConfigError, match=r"bridge\.grid\.1b-s0: the name is also a seed"):
        grid.resolve(bridge)


SEEDED = {
    **{n: e for n, e in ENTRIES.items() if n not in ("1a", "2c")},
    **{f"1a-s{s}": dict(ENTRIES["1a"], run_id=f"r1a{s}", base="1a", seed=s) for s in range(2)},
}


@pytest.fixture
def runs(tmp_path):
    """1a's seed 0 well above 1b, seed 1 at 1b's level; the rest as conftest.py's runs."""
    finals = {"r1a0": 0.8, "r1a1": 0.3, "r1b": 0.3, "r2a": 0.4, "r2b": 0.6}
    rng = np.random.default_rng(0)
    summaries, benches, samples = {}, {}, {}
    for run_id, final in finals.items():
        d = tmp_path / run_id
        summaries[run_id] = io.write_json(d / "s.json", run_summary(run_id, 0.9, final, 8))
        benches[run_id] = d / "bench.tsv"
        benches[run_id].write_text("s\th:m:s\n36.0\t0:00:36\n")
        correct = rng.random(200) < final
        frame = pd.DataFrame({"id": [f"q{i}" for i in range(200)], "correct": correct})
        samples[run_id] = io.write_frame(d / "samples.parquet", frame)
    return summaries, benches, samples


def test_summary_has_a_seed_column_only_with_seeds(runs):
    summaries, benches, _ = runs
    summary, _ = tables.build_summary(SEEDED, summaries, benches, gpus=1)
    assert list(summary.columns[:3]) == ["entry", "base_entry", "seed"]
    s = summary.set_index("entry")
    assert s.loc["1a-s1", "base_entry"] == "1a" and s.loc["1a-s1", "seed"] == 1
    assert s.loc["1b", "base_entry"] == "1b" and pd.isna(s.loc["1b", "seed"])
    plain = {n: e for n, e in SEEDED.items() if "seed" not in e}
    assert list(tables.build_summary(plain, summaries, benches, 1)[0].columns) == (
        tables.SUMMARY_COLUMNS
    )


def test_claims_on_a_seeded_entry_are_pooled_and_per_seed(runs, tmp_path):
    _, _, samples = runs
    df = claims.write(SEEDED, samples, {}, tmp_path / "c.csv", None).set_index("claim")
    rows = list(df.index)
    at = rows.index("stability_fixes_work")  # the pooled row, then one per seed
    assert rows[at + 1 : at + 3] == ["stability_fixes_work/seed0", "stability_fixes_work/seed1"]
    assert df.loc["stability_fixes_work/seed0"].verdict == "supported"
    assert df.loc["stability_fixes_work/seed1"].verdict != "supported"
    pooled = df.loc["stability_fixes_work"]
    assert pooled.evidence.endswith("holds in 1 of 2 seeds")
    assert "1a final (mean of 2 seeds)" in pooled.evidence
    # the compression claim reads 1a by its declared name (K from its seeds)
    assert df.loc["compression_tradeoff"].verdict != "not run"
    assert "compression_tradeoff/seed1" in rows


def test_status_shows_the_spread_and_k_of_n(runs, tmp_path):
    from ablate.bridge import status

    summaries, benches, samples = runs
    results = tmp_path / "results"
    tables.write_summary(
        SEEDED, summaries, benches, 1, results / layout.PATTERNS["summary"], tmp_path / "curves.csv"
    )
    claims.write(SEEDED, samples, {}, results / layout.PATTERNS["claims"], None)
    lines = status.key_results({"results": "results"}, tmp_path)
    assert "- 1a over 2 seeds: final mean 0.550, range 0.300 to 0.800" in lines
    stable = [x for x in lines if x.startswith("- claim `stability_fixes_work`")]
    assert stable[0].endswith("(holds in 1 of 2 seeds)")
