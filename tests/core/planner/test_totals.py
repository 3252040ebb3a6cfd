"""A setup's total as the user reads it (ablate.core.planner.totals): the cells of plan.csv as
numbers, the total's one line, and why its estimate missed."""

from __future__ import annotations

import math

from ablate.core.planner.totals import FLOP_ESTIMATE, error_reason, hms, number, total_text


def test_a_cell_is_a_number_or_none():
    """plan.csv read with the csv module (STATUS) gives text: empty, '-', NaN and words are no
    number."""
    assert number("5318.5") == 5318.5 and number(12) == 12.0
    assert [number(x) for x in ("", "-", "nan", math.nan, None, "n/a")] == [None] * 6


def test_seconds_read_as_hours_minutes_seconds():
    assert hms(5385.4) == "1:29:45" and hms("59.6") == "0:01:00"
    assert hms(19_142_420) == "5317:20:20"  # hours past a day stay hours
    assert hms("") == "-" and hms(None) == "-"


def test_a_total_says_its_time_and_price_or_what_it_lacks():
    assert total_text({"est_s": 5385, "est_cost_usd": 2.771}) == "1:29:45 total, $2.77"
    assert total_text({"est_s": "5385", "est_cost_usd": ""}) == "1:29:45 total, no price"
    # no estimate: the TOTAL row's note after its first clause says why
    note = "3 jobs; no estimate for finetune/3A (does not fit)"
    assert total_text({"est_s": "", "note": note}) == (
        "- total, incomplete: no estimate for finetune/3A (does not fit)"
    )


def test_a_miss_names_how_many_jobs_were_not_measured_and_the_worst_one():
    """The largest miss by size, under or over."""
    jobs = [
        {"job": "finetune/3A", "error_pct": "-52", "throughput_source": f"{FLOP_ESTIMATE}: x"},
        {"job": "eval/base/causal", "error_pct": 40.4, "throughput_source": "measured on H200"},
        {"job": "leakage/causal", "error_pct": "", "throughput_source": FLOP_ESTIMATE},  # not run
    ]
    assert error_reason({"error_pct": 25}, jobs) == (
        "estimate +25 %: 1 of 2 finished jobs estimated from the FLOP estimate (an assumed peak "
        "and MFU: nothing measured on this setup when it was made); the largest miss "
        "finetune/3A -52 %"
    )
    measured = [dict(j, throughput_source="measured") for j in jobs]
    assert error_reason({"error_pct": -3}, measured).startswith(
        "estimate -3 %: all 2 finished jobs estimated from measurements;"
    )
    # no error figure on the total, or no finished job: nothing to explain
    assert error_reason({"error_pct": ""}, jobs) == ""
    assert error_reason({"error_pct": 5}, jobs[2:]) == ""
