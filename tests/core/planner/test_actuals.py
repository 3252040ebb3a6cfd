"""Actual times of finished jobs beside the forecast (ablate.core.planner.actuals): error, status,
rows of unplanned hardware."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from helpers import EMBEDDED_RUN, MINISTRAL_RUN, load_unpacked, planner_config, row

from ablate.core import planner


def test_estimate_vs_actual_after_a_run(tmp_path):
    config = planner_config("config.yaml")
    # forecast before the run: nothing measured yet (an empty root)
    before = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert before["actual_s"].isna().all() and before["error_pct"].isna().all()
    assert row(before, "1x cpu", "finetune/3A")["throughput_source"].startswith("flop-estimate")
    frozen_csv = tmp_path / "estimate.csv"
    planner.write_plan(planner.Plan(before, {}), frozen_csv)
    plan = planner.make_plan(config, root=EMBEDDED_RUN, frozen=pd.read_csv(frozen_csv))
    after = plan.table
    cpu = after[(after["setup"] == "1x cpu") & (after["job"] != planner.TOTAL)]
    assert cpu["actual_s"].notna().all()  # every job ran on the cpu
    r = row(after, "1x cpu", "finetune/5B")
    assert (
        r["actual_s"] == 96.0
        and r["actual_source"] == "benchmark results/benchmarks/finetune/5B.tsv"
    )
    assert r["error_pct"] == pytest.approx(100 * (r["est_job_s"] - 96.0) / 96.0, abs=0.1)
    assert (
        r["est_job_s"] == row(before, "1x cpu", "finetune/5B")["est_job_s"]
    )  # the frozen forecast
    total = row(after, "1x cpu", planner.TOTAL)
    assert total["actual_s"] == pytest.approx(cpu["actual_s"].sum(), abs=0.1)
    assert total["error_pct"] == pytest.approx(
        100 * (cpu["est_job_s"].sum() - total["actual_s"]) / total["actual_s"], abs=0.1
    )
    # nothing ran on the GPU setups, and their rows say where each job did run
    gpu = after[after["gpu"] != "cpu"]
    assert gpu["actual_s"].isna().all() and gpu["error_pct"].isna().all()
    assert (gpu[gpu["job"] != planner.TOTAL]["status"] == "ran on 1x cpu").all()
    assert (cpu["status"] == "ran on this setup").all()
    assert total["status"] == "14 of 14 jobs ran, 14 with an actual time on this setup"
    # the summary says why the frozen forecast missed: every job from the FLOP estimate
    (line,) = [x for x in planner.summary_lines(plan) if "1x cpu:" in x]
    assert "%: 14 of 14 finished jobs estimated from the FLOP estimate" in line
    worst = cpu.loc[cpu["error_pct"].abs().idxmax()]
    assert f"the largest miss {worst['job']} {worst['error_pct']:+.0f} %" in line


def test_actuals_of_a_job_on_unplanned_hardware_get_their_own_row(tmp_path):
    config = planner_config("ministral3b.yaml", setups=[{"gpu": "H100 SXM"}])
    p = planner.make_plan(config, root=MINISTRAL_RUN)
    extra = p.table[p.table["setup"] == "1x H200"]
    assert sorted(extra["job"]) == ["eval/base/causal", "finetune/3B"]
    assert sorted(extra["actual_s"]) == [131.0, 702.0]
    assert (extra["note"].str.contains("not a setup of this plan")).all()


def test_fresh_estimate_with_actuals_flags_own_run(tmp_path):
    # the fixture's finetunes ran unpacked: their own rate is the unpacked config's
    p = planner.make_plan(load_unpacked("ministral3b.yaml", tmp_path), root=MINISTRAL_RUN)
    r = row(p.table, "1x H200", "finetune/3B")
    assert r["actual_s"] == 702.0 and r["note"].startswith(
        "estimate used this run's own measurement"
    )


def test_partial_run_says_which_jobs_ran(tmp_path):
    """Some jobs finished: their actuals fill in, every other row says it has not run yet."""
    config = planner_config("config.yaml", setups=[{"gpu": "cpu"}, {"gpu": "H200"}])
    frozen = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert frozen["status"].isna().all()  # an estimate only: actuals were not looked for
    none = planner.make_plan(config, root=tmp_path, frozen=frozen)
    t = none.table
    assert (t["status"] == planner.NOT_RUN).all() and t[
        planner.ACTUAL_COLUMNS[:-1]
    ].isna().all().all()
    assert "jobs run: 0 of 14 (actual_s and error_pct fill in" in "\n".join(
        planner.summary_lines(none)
    )
    for f in (
        "results/finetune/3A/summary.json",
        "results/benchmarks/finetune/3A.tsv",
        "results/eval/base/causal/metrics.json",
    ):  # this one without its benchmark file
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EMBEDDED_RUN / f, tmp_path / f)
    (tmp_path / "results/leakage").mkdir(parents=True)
    (tmp_path / "results/leakage/causal.json").write_text("{}")  # no provenance: no hardware
    part = planner.make_plan(config, root=tmp_path, frozen=frozen)
    t = part.table
    ft = row(t, "1x cpu", "finetune/3A")
    assert ft["actual_s"] == 41.0 and ft["status"] == "ran on this setup"
    assert ft["error_pct"] == pytest.approx(100 * (ft["est_job_s"] - 41.0) / 41.0, abs=0.1)
    ev = row(t, "1x cpu", "eval/base/causal")  # the provenance wall time stands in
    assert ev["actual_source"] == "wall_time_s of results/eval/base/causal/metrics.json"
    assert row(t, "1x H200", "finetune/3A")["status"] == "ran on 1x cpu"
    assert row(t, "1x cpu", "leakage/causal")["status"].startswith("ran, but no actual:")
    assert pd.isna(row(t, "1x cpu", "leakage/causal")["actual_s"])
    assert row(t, "1x cpu", "finetune/5B")["status"] == planner.NOT_RUN
    tot = row(t, "1x cpu", planner.TOTAL)
    assert (
        pd.isna(tot["actual_s"])
        and tot["status"] == "3 of 14 jobs ran, 2 with an actual time on this setup"
    )
    assert "jobs run: 3 of 14" in "\n".join(planner.summary_lines(part))
    # a plan.csv passed as the frozen estimate: its actuals are not carried over
    again = planner.make_plan(config, root=tmp_path / "empty", frozen=t)
    assert again.table["actual_s"].isna().all() and (again.table["status"] == planner.NOT_RUN).all()
