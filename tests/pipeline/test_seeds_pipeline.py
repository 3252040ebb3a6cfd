"""End to end: two seeds of a small overlay of the embedded default, on a copy of the session's
finished run (tests/conftest.py `embedded_run`): only the seeds' jobs run (the base model, its
evaluations and the bridge's models are the finished run's), each seed its own job, files and
run id; the claims tables state the claims pooled and per seed.

Kept cheap: 3B's seeds are the finished run's own (5: its 3B, reused, no job) and one more (6:
one finetune and its two evaluations, not two of each), the stage-5 claims are left out (so its
seeds are not targets), the seeded bridge entry trains 40 steps; targets are the two claims
tables and the bridge summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from checkout import snakemake

pytestmark = pytest.mark.slow

#: 3B's seeds: the default's own (config/config.yaml, mask.finetune.defaults.seed: the finished
#: run's 3B is its run, under 3B's own name and files) and another (3B-s6, its own job and files).
SEEDS = {5: "3B", 6: "3B-s6"}
#: Merged over config/config.yaml (README: `--configfile config/config.yaml config/seeds3.yaml`).
OVERLAY = {
    "mask": {
        "finetune": {"variants": {"3B": {"seeds": list(SEEDS)}}},
        "claims": {"long_variant": None},
    },
    "bridge": {"grid": {"1a": {"seeds": [0, 1], "steps": 40}}},
}
TARGETS = ("results/claims/mask.csv", "results/bridge/claims.csv", "results/bridge/summary.csv")


@pytest.fixture(scope="module")
def seeded_run(embedded_run, tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("seeds") / "run"
    shutil.copytree(embedded_run, wd, symlinks=True)
    (wd / "config" / "two_seeds.yaml").write_text(yaml.safe_dump(OVERLAY))
    args = ("--configfile", "config/config.yaml", "config/two_seeds.yaml")
    r = snakemake(wd, "-c2", *TARGETS, *args, timeout=1200)
    (wd / "seeds.log").write_text(r.stdout + r.stderr)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    return wd


def test_each_seed_is_its_own_finetune_with_its_own_run_id(seeded_run):
    records = {
        s: json.loads((seeded_run / f"results/finetune/{name}/summary.json").read_text())
        for s, name in SEEDS.items()
    }
    prov = {s: r["provenance"] for s, r in records.items()}
    assert prov[5]["run_id"] != prov[6]["run_id"]
    assert [prov[s]["config"]["params"]["seed"] for s in SEEDS] == list(SEEDS)
    for name in SEEDS.values():
        assert (seeded_run / f"results/eval/{name}/prefill_bidir/samples.parquet").exists()
    # the unseeded variant, the base model and 3B's own seed were the finished run's: not run again
    log = (seeded_run / "seeds.log").read_text()
    assert "rule prepare_model:" not in log and "results/finetune/3A/" not in log
    assert "results/finetune/3B/" not in log and "results/finetune/3B-s5" not in log


def test_mask_claims_pooled_and_per_seed(seeded_run):
    df = pd.read_csv(seeded_run / "results/claims/mask.csv").set_index("claim")
    for claim in ("prefix_recovers_more", "prefix_side_effect_small"):
        assert df.loc[claim, "verdict"] != "not run"
        assert "(mean of 2 seeds)" in df.loc[claim, "evidence"]
        assert df.loc[claim, "evidence"].split("; ")[-1].endswith(" of 2 seeds")
        assert {f"{claim}/seed{s}" for s in SEEDS} <= set(df.index)
    assert not any(c.startswith("long_") for c in df.index)
    assert "learned/seed5" not in df.index  # the base model's claims do not depend on a seed


def test_bridge_seeds_have_their_own_runs_and_pooled_claims(seeded_run):
    summary = pd.read_csv(seeded_run / "results/bridge/summary.csv").set_index("entry")
    seeds = summary[summary["base_entry"] == "1a"]
    assert sorted(seeds.index) == ["1a-s0", "1a-s1"] and seeds["run_id"].nunique() == 2
    assert summary.loc["2c-s1", "run_id"] == summary.loc["1a-s1", "run_id"]  # same_as, per seed
    claims = pd.read_csv(seeded_run / "results/bridge/claims.csv").set_index("claim")
    assert "stability_fixes_work/seed1" in claims.index
    assert "1a final (mean of 2 seeds)" in claims.loc["stability_fixes_work", "evidence"]


OVERLAY_FILES = ["config/config.yaml", "config/two_seeds.yaml"]


@pytest.mark.parametrize(
    "files", [["config/config.yaml"], OVERLAY_FILES], ids=["default", "overlay"]
)
def test_status_agrees_with_snakemake_after_the_overlay_run(seeded_run, files):
    """After the overlay's run, STATUS of either configuration says done exactly where
    `snakemake -n` of the same config files plans nothing: the default's claims and bridge
    summary, last written by the overlay's run from its seeds, are stale (its STATUS said every
    job done and nothing remains while the dry run planned them again)."""
    from helpers import disagreements, planned_outputs

    from ablate.core.planner.inputs import load_config
    from ablate.core.reports import status

    config = load_config([seeded_run / f for f in files])
    text, rows = status.build(config, seeded_run)
    planned = planned_outputs(seeded_run, "--configfile", *files)
    wrong = disagreements(rows, planned)
    whys = [(r.job.name, r.status, r.why) for r in rows if f"{r.job.study}:{r.job.name}" in
            {w[0] for w in wrong}]  # fmt: skip
    assert not wrong, (files, whys)
    if files != OVERLAY_FILES:
        assert planned and "nothing remains" not in text
        stale = {r.job.name for r in rows if r.why.startswith("last run by another config")}
        assert {"mask_claims", "summary"} <= stale, [
            (r.job.name, r.status, r.why) for r in rows if r.status != "done"
        ]
