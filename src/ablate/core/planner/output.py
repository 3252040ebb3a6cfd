"""The plan as the user reads it: summary lines (log, CLI), plan.csv and its HTML view."""

from __future__ import annotations

import os

import pandas as pd

from ablate.core.outputs import io
from ablate.core.planner.actuals import NOT_RUN, UNPLANNED
from ablate.core.planner.estimate import COLUMNS, UNMEASURED
from ablate.core.planner.files import ON_GPU_COUNTS
from ablate.core.planner.plan import Plan
from ablate.core.planner.totals import FLOP_ESTIMATE, TOTAL, error_reason, hms, number, total_text


def failed_plan(message: str) -> Plan:
    """A plan of one row that says why there is no forecast (the planner itself failed)."""
    table = pd.DataFrame([{c: None for c in COLUMNS} | {"job": TOTAL, "note": message}])
    return Plan(table[COLUMNS], {"failed": message})


def summary_lines(p: Plan) -> list[str]:
    """Human-readable plan: model, price provenance, one line per setup, measured vs estimated."""
    t, info = p.table, p.info
    if "failed" in info:
        return [f"no plan: {info['failed']}"]
    size = f"{info['params'] / 1e9:.4g} B parameters" if info.get("params") else "size unknown"
    if info.get("several_models"):  # each its own size, in the model list
        size = "sizes as listed"
    lines = [f"model: {info['model']}, {size} ({info['params_source']})"]
    lines += [f"warning: {x}" for x in info.get("problems", [])]
    dates = ", ".join(info["captured_at"]) or "none"
    lines.append(f"prices captured at: {dates}")
    jobs = t[t["job"] != TOTAL]
    n_meas = jobs["throughput_source"].fillna("").str.startswith("measured").sum()
    n_flop = jobs["throughput_source"].fillna("").str.startswith(FLOP_ESTIMATE).sum()
    lines.append(
        f"throughput: {n_meas} (setup, job) rows from measurements, {n_flop} from the FLOP estimate"
    )
    no_est = sorted(set(jobs[jobs["note"].fillna("").str.startswith("no estimate")]["job"]))
    if no_est:
        lines.append(f"no estimate for: {', '.join(no_est)} (the note column says why)")
    if jobs["status"].notna().any():  # actuals were looked for (not an estimate only)
        planned = jobs[jobs["note"] != UNPLANNED]
        ran = planned[planned["status"] != NOT_RUN]["job"].nunique()
        n = planned["job"].nunique()
        lines.append(
            f"jobs run: {ran} of {n}"
            + (" (actual_s and error_pct fill in as the jobs finish)" if ran < n else "")
        )
    unmeasured = sorted(set(jobs[jobs["note"].fillna("").str.contains(UNMEASURED)]["job"]))
    if unmeasured:
        lines.append(
            f"scaling: the data-parallel speed-up of {', '.join(unmeasured)} is unmeasured for "
            "its recipe (no scaling row of the measurements file): plan.scaling's value (the note)"
        )
    counts = jobs.dropna(subset=[ON_GPU_COUNTS]).drop_duplicates("job")
    if len(counts):
        lines.append(
            "each data-parallel job on 1, 2, 4, 8 GPUs (its resources gpu; time, speed-up):"
        )
        lines += [f"  {r.job} {r[ON_GPU_COUNTS]}" for _, r in counts.iterrows()]
    lines += _memory_lines(jobs)
    # fastest first, a setup without a total last: the local CPU's total of a GPU study (221 days
    # for the real one) headed the list
    totals = t[t["job"] == TOTAL].sort_values("est_s", kind="stable", na_position="last")
    for _, r in totals.iterrows():
        act = ""
        if not pd.isna(r.get("actual_s")):
            act = f", actual job time {hms(r['actual_s'])}"
            if not pd.isna(r.get("error_pct")):
                mine = jobs[jobs["setup"] == r["setup"]].to_dict("records")
                act += f" ({error_reason(r, mine)})"
        bid = ""
        if not pd.isna(r.get("interruption_s")):
            bid = f" (incl. {hms(r['interruption_s'])} expected restarts after being outbid)"
        text = total_text(r)
        if (number(r.get("est_s")) or 0) >= 2 * 86400:  # 5318:30:20 reads as hours
            text = text.replace(" total", f" total ({r['est_s'] / 86400:.0f} days)", 1)
        lines.append(f"  {r['setup']:>14}: {text}{bid}{act}")
    lines += [f"  missing price: {src}" for src in info["prices"] if src.startswith("no price")]
    return lines


def _memory_lines(jobs: pd.DataFrame) -> list[str]:
    """For the jobs that do not fit some setup: where not, and per GPU model the smallest setup
    where they fit (fewest GPUs, then the lowest price); jobs refused alike share a line."""

    def needs(rows: pd.DataFrame) -> str:  # the job's need, not the setup's memory
        return ", ".join(
            f"{r['setup']} (needs {r['memory_gb']:.3g} GB a GPU)" for _, r in rows.iterrows()
        )

    said: dict[tuple[str, str], list[str]] = {}
    for job, rows in jobs.groupby("job", sort=False):
        no, yes = rows[rows["fits_memory"] == "no"], rows[rows["fits_memory"] == "yes"]
        if no.empty:
            continue
        best = yes.sort_values(["gpus", "price_per_hour"], na_position="last")
        fit = needs(best.drop_duplicates("gpu")) or "none of the setups"
        said.setdefault((needs(no), fit), []).append(str(job))
    return [
        f"memory: {', '.join(j)} {'does' if len(j) == 1 else 'do'} not fit {why} (the note says "
        f"why); the smallest setup of each GPU where {'it fits' if len(j) == 1 else 'they fit'}: "
        f"{fit}"
        for (why, fit), j in said.items()
    ]


_TOTAL_VIEW = [
    "setup",
    "est_s",
    "est_cost_usd",
    "price_per_hour",
    "interruption_s",
    "actual_s",
    "error_pct",
]
_JOB_VIEW = [
    "setup",
    "job",
    "tokens",
    "tok_s_per_gpu",
    "throughput_source",
    "compute_s",
    "job_overhead_s",
    "rental_overhead_s",
    "interruption_s",
    "est_s",
    "fits_memory",
    "est_cost_usd",
    "actual_s",
    "error_pct",
    "status",
    "price_source",
]


def write_plan(p: Plan, csv: str | os.PathLike, html: str | os.PathLike | None = None) -> None:
    io.write_frame(csv, p.table)
    if not html:
        return
    totals = p.table[p.table["job"] == TOTAL][[*_TOTAL_VIEW, "status", "note"]].copy()
    totals.insert(2, "est_h:m:s", totals["est_s"].map(hms))
    jobs = p.table[p.table["job"] != TOTAL][_JOB_VIEW]
    head = "".join(f"<li>{line.strip()}</li>" for line in summary_lines(p))
    io.write_text(
        html,
        "<html><head><meta charset='utf-8'><title>Runtime and cost plan</title>"
        "<style>body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 5px;vertical-align:top}</style></head><body>"
        f"<h2>Runtime and cost plan</h2><ul>{head}</ul>"
        "<p>est_s = rental overhead (boot, shipping) + job overhead (start-up, load, saves) + "
        "tokens / (tok_s_per_gpu x speedup) (+ interruption_s: expected restarts on an interruptible "
        "setup); error_pct compares the job time (est_job_s) with the "
        "actual one. Model and assumptions: docs/planner.md; every column: plan.csv.</p>"
        f"<h3>Per setup (jobs in sequence)</h3>{totals.fillna('-').to_html(index=False)}"
        f"<h3>Per job</h3>{jobs.fillna('-').to_html(index=False)}</body></html>\n",
    )
