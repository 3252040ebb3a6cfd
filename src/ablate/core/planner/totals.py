"""A setup's total as the user reads it, in one wording for the plan's summary and STATUS's
forecast (import-light: no pandas, STATUS reads plan.csv with the csv module)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

TOTAL = "TOTAL"  # the `job` of a setup's sum row
#: the start of a job row's throughput_source when no measurement informed it
FLOP_ESTIMATE = "flop-estimate"


def number(x: Any) -> float | None:
    """A plan cell as a float: None for empty, '-', NaN or text."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def hms(s: Any) -> str:
    s = number(s)
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def total_text(row: Mapping[str, Any]) -> str:
    """'1:29:45 total, $2.77'; '- total, incomplete: <why>' where a job has no estimate or does
    not fit (the TOTAL row's note says which); 'no price' where the setup has none."""
    if number(row.get("est_s")) is None:
        return "- total, incomplete: " + str(row.get("note") or "").split("; ", 1)[-1]
    cost = number(row.get("est_cost_usd"))
    return f"{hms(row['est_s'])} total, " + ("no price" if cost is None else f"${cost:.2f}")


def error_reason(total: Mapping[str, Any], jobs: Iterable[Mapping[str, Any]]) -> str:
    """Why a setup's estimate missed its actual time: how many of its jobs came from the FLOP
    estimate, and the largest miss; empty where the total has no error figure."""
    error = number(total.get("error_pct"))
    jobs = [j for j in jobs if number(j.get("error_pct")) is not None]
    if error is None or not jobs:
        return ""
    flop = sum(str(j.get("throughput_source") or "").startswith(FLOP_ESTIMATE) for j in jobs)
    worst = max(jobs, key=lambda j: abs(number(j["error_pct"])))
    source = (
        f"{flop} of {len(jobs)} finished jobs estimated from the FLOP estimate (an assumed peak "
        "and MFU: nothing measured on this setup when it was made)"
        if flop
        else f"all {len(jobs)} finished jobs estimated from measurements"
    )
    return (
        f"estimate {error:+.0f} %: {source}; the largest miss {worst['job']} "
        f"{number(worst['error_pct']):+.0f} %"
    )
