"""STATUS's forecast is the planner's: each setup's TOTAL row (side by side on a multi-GPU
machine, its boot included), "incomplete" and why where a job has no estimate or does not fit, and
why an estimate missed a finished run by as much as it did."""

from __future__ import annotations

import csv
from pathlib import Path

from ablate.core.jobs import Job
from ablate.core.planner.files import ON_GPU_COUNTS, PLAN_FILES
from ablate.core.planner.totals import TOTAL
from ablate.core.reports import status

FIELDS = [
    "setup",
    "job",
    "est_s",
    "est_cost_usd",
    "fits_memory",
    "error_pct",
    "throughput_source",
    "note",
    ON_GPU_COUNTS,
]


def job_rows(setup, est, cost, **extra):
    return [
        {"setup": setup, "job": name, "est_s": e, "est_cost_usd": c, "fits_memory": "yes", **extra}
        for (name, e), c in zip(est.items(), cost, strict=True)
    ]


def write_plan(tmp_path: Path, rows: list[dict]) -> dict:
    config = {"results": "results", "plan": {"studies": ["mask"]}}
    path = tmp_path / "results" / PLAN_FILES["plan_csv"]
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows({k: r.get(k, "") for k in FIELDS} for r in rows)
    return config


def status_rows(done: set[str], names=("eval/base/causal", "finetune/3A")) -> list[status.Row]:
    return [
        status.Row(Job("mask", "r", n, {}, {}, None), "done" if n in done else "to run", why="")
        for n in names
    ]


def forecast(tmp_path, plan_rows, done=()):
    config = write_plan(tmp_path, plan_rows)
    return status.planned_forecast("mask", config, tmp_path, status_rows(set(done)), lambda j: 60)


def test_every_job_left_gives_the_setups_total_row_not_the_sum_of_its_jobs(tmp_path):
    # 8 GPUs run the two jobs side by side: the planner's total (1761 s, $7.24) is not their sum
    plan = job_rows("8x H100 SXM", {"eval/base/causal": 600, "finetune/3A": 1500}, [2.5, 6.1])
    plan.append({"setup": "8x H100 SXM", "job": TOTAL, "est_s": 1761, "est_cost_usd": 7.24})
    assert forecast(tmp_path, plan) == [
        "- mask on 8x H100 SXM: 2 planned jobs left, 0:29:21 total, $7.24"
    ]


def test_a_job_that_does_not_fit_makes_the_setup_incomplete_and_says_why(tmp_path):
    plan = [
        {"setup": "1x RTX 4090", "job": "eval/base/causal", "est_s": 900, "est_cost_usd": 0.1},
        {"setup": "1x RTX 4090", "job": "finetune/3A", "fits_memory": "no"},
        {
            "setup": "1x RTX 4090",
            "job": TOTAL,
            "note": "jobs run one after another, each on its own instance; no estimate for "
            "finetune/3A (does not fit in memory: finetune/3A)",
        },
    ]
    (line,) = forecast(tmp_path, plan)
    assert line == (
        "- mask on 1x RTX 4090: 2 planned jobs left, - total, incomplete: no estimate for "
        "finetune/3A (does not fit in memory: finetune/3A)"
    )
    # some done: the jobs left are summed, and one without an estimate still makes it incomplete
    (line,) = forecast(tmp_path / "partial", plan, done={"eval/base/causal"})
    assert line.startswith(
        "- mask on 1x RTX 4090: 1 planned job left, - total, incomplete: no estimate for "
        "finetune/3A (does not fit in memory: finetune/3A) (of 2 planned; the plan's whole run: "
        "- total"
    )


def test_with_some_jobs_done_the_jobs_left_are_summed_beside_the_whole_runs_total(tmp_path):
    plan = job_rows("1x H100 SXM", {"eval/base/causal": 600, "finetune/3A": 1500}, [0.5, 1.25])
    plan.append({"setup": "1x H100 SXM", "job": TOTAL, "est_s": 2100, "est_cost_usd": 1.75})
    assert forecast(tmp_path, plan, done={"eval/base/causal"}) == [
        "- mask on 1x H100 SXM: 1 planned job left, 0:25:00 total, $1.25 (of 2 planned; the plan's "
        "whole run: 0:35:00 total, $1.75)"
    ]


def test_an_estimate_that_missed_says_it_came_from_the_flop_estimate(tmp_path):
    flop = "flop-estimate: nothing measured for train of a 0.00849 B model"
    plan = job_rows(
        "1x cpu", {"eval/base/causal": 60, "finetune/3A": 1510}, ["", ""], throughput_source=flop
    )
    plan[0]["error_pct"], plan[1]["error_pct"] = 81.5, 2355.1
    plan.append({"setup": "1x cpu", "job": TOTAL, "est_s": 1570, "error_pct": 956.0})
    (line,) = forecast(tmp_path, plan)
    assert line == (
        "- mask on 1x cpu: 2 planned jobs left, 0:26:10 total, no price (estimate +956 %: 2 of 2 "
        "finished jobs estimated from the FLOP estimate (an assumed peak and MFU: nothing measured "
        "on this setup when it was made); the largest miss finetune/3A +2355 %)"
    )


def test_jobs_the_planner_does_not_time_are_named_once_not_counted_in_the_totals(tmp_path):
    """STATUS's 'N to run' counts every job; the forecast's totals only the planned ones: the jobs
    between them (tables, plots) are named, so the two counts do not seem to disagree."""
    plan = job_rows("8x H100 SXM", {"eval/base/causal": 600, "finetune/3A": 1500}, [2.5, 6.1])
    plan.append({"setup": "8x H100 SXM", "job": TOTAL, "est_s": 1761, "est_cost_usd": 7.24})
    config = write_plan(tmp_path, plan)
    rows = status_rows(set(), names=("eval/base/causal", "finetune/3A", "recovery_table"))
    assert status.planned_forecast("mask", config, tmp_path, rows, lambda j: 60) == [
        "- mask: 3 jobs left, 1 of them not in the plan (the planner times no recovery_table): "
        "the totals below leave them out",
        "- mask on 8x H100 SXM: 2 planned jobs left, 0:29:21 total, $7.24",
    ]


def test_each_data_parallel_job_left_says_what_more_gpus_buy(tmp_path):
    """STATUS gives each data-parallel job left on 1, 2, 4 and 8 GPUs, from the plan's
    column (a job on two setups' rows once; a job done, not at all)."""
    cell = "on H100 SXM GPUs of one machine: 1: 0:25:00 (1.00x); 2: 0:23:35 (1.06x)"
    plan = job_rows("1x H100 SXM", {"eval/base/causal": 600, "finetune/3A": 1500}, [1, 2])
    plan += job_rows("2x H100 SXM", {"eval/base/causal": 600, "finetune/3A": 1415}, [2, 4])
    plan[1][ON_GPU_COUNTS] = plan[3][ON_GPU_COUNTS] = cell
    lines = forecast(tmp_path, plan)
    assert [x for x in lines if ON_GPU_COUNTS in x or "of one machine" in x] == [
        f"- mask: finetune/3A {cell}"
    ]
    assert not [x for x in forecast(tmp_path / "b", plan, done=["finetune/3A"]) if cell in x]
