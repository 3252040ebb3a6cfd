"""The embedded bridge study run end to end once (fixture bridge_run, minutes): its outputs, reuse
(2c runs nothing), STATUS, and that editing one grid entry reruns only that entry and the tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from checkout import snakemake
from helpers import job_counts

from ablate.core.planner.inputs import load_config
from ablate.core.reports import status

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
B = Path("results/bridge")


def test_outputs_exist(bridge_run):
    for f in [
        "summary.csv",
        "curves.csv",
        "claims.csv",
        "claims.md",
        "claims.html",
        "plots/accuracy_over_steps.png",
        "plots/accuracy_vs_k.png",
        "plots/baselines.png",
    ]:
        assert (bridge_run / B / f).stat().st_size > 0, f
    infer = sorted((bridge_run / B / "infer").glob("*/summary.csv"))
    assert len(infer) == 2
    samples = pd.read_parquet(infer[0].with_name("samples.parquet"))
    assert set(samples["baseline"]) == {
        "source_alone",
        "target_alone",
        "latent",
        "token_budget",
        "cascade",
    }
    assert (samples["kv_cache_mb"] > 0).all()
    assert (samples["kv_cache_total_mb"] >= samples["kv_cache_mb"]).all()
    # the embedded pair: the claims page says the run shows the plumbing, not the seed's claims
    assert "show the plumbing" in (bridge_run / B / "claims.md").read_text()


def test_same_as_entry_has_no_run_of_its_own(bridge_run):
    summary = pd.read_csv(bridge_run / B / "summary.csv", keep_default_na=False).set_index("entry")
    assert summary.loc["2c", "run_id"] == summary.loc["1a", "run_id"]
    assert summary.loc["2c", "reuses"] == "1a" and summary.loc["1a", "reuses"] == ""
    assert summary.loc["2c", "final"] == summary.loc["1a", "final"]
    runs = sorted(p.name for p in (bridge_run / B / "runs").iterdir())
    assert runs == sorted(summary["run_id"].unique())
    assert len(runs) == len(summary) - 1
    trained = sorted(p.stem for p in (bridge_run / "results/benchmarks/bridge/train").glob("*.tsv"))
    assert trained == runs  # one training job per run id, none for 2c
    # every run's files record the run id they are named after
    for run_id in runs:
        s = json.loads((bridge_run / B / "runs" / run_id / "summary.json").read_text())
        assert s["run_id"] == run_id and s["provenance"]["run_id"] == run_id


def test_summary_numbers(bridge_run):
    summary = pd.read_csv(bridge_run / B / "summary.csv")
    assert (summary["degradation"] == summary["peak"] - summary["final"]).all()
    assert (summary["compression_ratio"] > 0).all()
    assert summary["benchmark_s"].notna().all() and summary["wall_s"].notna().all()
    assert set(summary["dataset"]) == {"gsm8k", "hotpotqa"}


def test_claims_table(bridge_run):
    claims = pd.read_csv(bridge_run / B / "claims.csv")
    assert list(claims["claim"]) == [
        "latent_beats_both",
        "stability_fixes_work",
        "compression_tradeoff",
        "generalises_beyond_math",
        "soft_beats_text",
        "kv_savings",
    ]
    assert set(claims["verdict"]) <= {"supported", "not supported", "inconclusive"}
    assert claims["p_value"].notna().all() and (claims["n"] > 0).all()
    assert claims["test"].str.len().gt(0).all()


def test_status_says_done(bridge_run):
    """STATUS (which covers what the bridge's plan.csv said): every bridge job done with the
    current config, each training run with its benchmark wall time."""
    _, rows = status.build(load_config(bridge_run / "config/config.yaml"), bridge_run)
    bridge = [r for r in rows if r.job.study == "bridge"]
    assert {r.status for r in bridge} == {"done"}, [(r.job.name, r.why) for r in bridge]
    trains = [r for r in bridge if r.job.rule == "bridge_train"]
    assert len(trains) == 8 and all(r.wall_s > 0 for r in trains)


def test_editing_one_entry_reruns_only_it(bridge_run, tmp_path):
    """2b's K changes: 2b trains again (a new run id); no other run, model or benchmark does;
    the tables follow. STATUS says exactly that run is to run (and the tables reading it stale)."""
    wd = tmp_path / "edited"
    shutil.copytree(bridge_run, wd, symlinks=True)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg["studies"] = ["bridge"]
    cfg["bridge"]["grid"]["2b"] = {"K": 5}
    (wd / "config" / "edited.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = snakemake(wd, "-n", "--configfile", "config/edited.yaml", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    assert {k: v for k, v in counts.items() if k != "all"} == {
        "bridge_train": 1,
        "bridge_summary": 1,
        "bridge_claims": 1,
        "bridge_plots": 1,
        "status": 1,
    }, r.stdout
    assert "wildcards: run_id=gsm8k-k5-" in r.stdout
    # STATUS (it replaced the bridge's plan.csv) names the one run to do and its forecast
    config = load_config(wd / "config" / "edited.yaml")
    text, rows = status.build(config, wd)
    todo = {r.job.name: r for r in rows if r.status != "done"}
    assert list(todo) == ["train/2b", "summary", "claims", "plots"], todo
    assert todo["train/2b"].status == "to run" and todo["summary"].why.startswith("reads train/2b")
    assert "- bridge: 4 jobs left; not planned (`plan.studies`)" in text
