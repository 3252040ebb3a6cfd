"""Adding a study (docs/design.md, "Adding a study"): a minimal third study defined in the test
suite (tests/toy_study: one rule, one job kind, one claim) plugs in through the registry, one
entry point, and shows up in the run, STATUS, the plan, the claims and the stale lines, with no
line of the core or of the other two studies changed."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from checkout import copy_checkout, snakemake

TOY = Path(__file__).resolve().parents[1] / "toy_study"
CONFIG = {"studies": ["toy"], "toy": {"bias": 0.8, "flips": 100}}


@pytest.mark.slow
def test_a_third_study_plugs_in_through_the_registry(tmp_path):
    wd = copy_checkout(tmp_path / "wd")
    (wd / "config" / "toy.yaml").write_text(yaml.safe_dump(CONFIG))
    env = {"PYTHONPATH": os.pathsep.join([str(wd / "src"), str(TOY)])}
    r = snakemake(wd, "-c1", "--configfile", "config/toy.yaml", env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    # the terminal (ablate.core.execution.terminal): the time left by the planner's estimates of its
    # one planned job, then the run ends with its summary: claims, results, the report command
    assert "left by the planner's estimates (1 planned job to go on " in r.stderr, r.stderr
    tail = r.stderr.rstrip().splitlines()[-5:]
    assert tail == [
        "Finished: the results are under results/ (what ran and why: results/STATUS.md)",
        "toy claims (results/claims/toy.csv): 1 supported",
        tail[2],
        "toy results: results/claims/toy.csv",
        "Report: snakemake --report results/report.html --configfile config/toy.yaml",
    ], tail
    assert tail[2].startswith("  heads_win: supported ("), tail
    results = wd / "results"
    claims = pd.read_csv(results / "claims" / "toy.csv")
    assert list(zip(claims["study"], claims["claim"], claims["verdict"])) == [
        ("toy", "heads_win", "supported")
    ]
    status = (results / "STATUS.md").read_text()
    assert "- claim `heads_win`: **supported**" in status, status
    row = [line for line in status.splitlines() if "| flip |" in line]
    assert len(row) == 1 and "| done |" in row[0], status
    plan = pd.read_csv(results / "plan.csv")
    jobs = plan[plan["job"] != "TOTAL"]
    assert set(jobs["job"]) == {"flip"} and set(jobs["kind"]) == {"eval"}, plan
    assert jobs["actual_s"].notna().any(), plan  # its finished run, read from its benchmark
    # its slice is recorded and compared like every study's: an edit is named before the run
    edited = {**CONFIG, "toy": {**CONFIG["toy"], "bias": 0.6}}
    (wd / "config" / "edited.yaml").write_text(yaml.safe_dump(edited))
    r = snakemake(wd, "-n", "--configfile", "config/edited.yaml", env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stale: toy_flip: toy.bias 0.8 -> 0.6" in r.stderr, r.stderr
