"""The forecast: one row per (setup, planned job) and a TOTAL row per setup.

The time model: docs/planner.md, "The model". A row whose numbers cannot be worked out keeps its
place with empty numbers and a note that says what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd

from ablate.core.planner.files import ON_GPU_COUNTS
from ablate.core.planner.inputs import CPU, Measurement, Reference, Setup, log
from ablate.core.planner.interruptions import interruption_overhead
from ablate.core.planner.memory_need import fewest_gpus, measured_need_gb, memory_need_gb, recipe_on
from ablate.core.planner.overheads import downloads_on, job_overhead, rental_overhead
from ablate.core.planner.planned_jobs import PlannedJob
from ablate.core.planner.prices import Price
from ablate.core.planner.schedule import Slot, makespan
from ablate.core.planner.throughput import Throughput, pick_throughput
from ablate.core.planner.totals import TOTAL

#: Column order of plan.csv (the contract with the report, the docs and the tests).
COLUMNS = [
    "setup",
    "gpu",
    "gpus",
    "job",
    "kind",
    "model",
    "policy",
    "tokens",
    "tokens_source",
    "tok_s_per_gpu",
    "throughput_source",
    "measured_run_id",
    "speedup",
    "compute_s",
    "job_overhead_s",
    "rental_overhead_s",
    "interruption_s",
    "est_job_s",
    "est_s",
    "memory_gb",
    "fits_memory",
    "price_per_hour",
    "price_source",
    "prices_captured_at",
    "est_cost_usd",
    "actual_s",
    "actual_source",
    "error_pct",
    "status",
    "note",
    ON_GPU_COUNTS,
]
_MOST_GPUS = 8  # the largest machine a refusal looks for a fit on (Vast's largest hosts)
#: said on a data-parallel training row whose recipe has no measured scaling row
UNMEASURED = " unmeasured: "


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def _with_extras(
    compute: float | None,
    job: PlannedJob,
    s: Setup,
    ms: list[Measurement],
    ref: Reference,
    plan: dict,
    notes: list[str],
    used: int,
) -> float | None:
    """``compute`` plus the other work inside the job (``job.extra``), each at its own rate on
    ``used`` GPUs and said in ``notes``; None when any part has no rate."""
    for x in job.extra:
        part = replace(
            job,
            kind=x["kind"],
            policy=x.get("policy"),
            flops_per_token=x.get("flops_per_token"),
            extra=[],
        )
        xtp = pick_throughput(part, s.gpu, ms, ref, plan)
        # an extra may scale otherwise than its kind (the bridge's sharded evaluations)
        xs = 1 + (used - 1) * plan["scaling"][x.get("scaling_key") or x["kind"]]
        if compute is None or not xtp.tok_s_per_gpu:
            notes.append(f"{x['what']}: no rate ({xtp.source})")
            compute = None
            continue
        secs = x["tokens"] / (xtp.tok_s_per_gpu * xs)
        compute += secs
        notes.append(
            f"+ {secs:.0f} s {x['what']}: {x['tokens']:.4g} tokens at "
            f"{xtp.tok_s_per_gpu:.4g} tok/s x {xs:g} ({xtp.source})"
        )
    return compute


def _setup_columns(s: Setup, price: Price) -> dict[str, Any]:
    return dict(
        setup=s.label,
        gpu=s.gpu,
        gpus=s.count,
        price_per_hour=price.per_hour,
        price_source=price.source,
        prices_captured_at=price.captured_at,
    )


def _job_columns(job: PlannedJob, s: Setup, price: Price) -> dict[str, Any]:
    return dict(
        _setup_columns(s, price),
        job=job.id,
        kind=job.kind,
        model=job.model,
        policy=job.policy,
        tokens=_r(job.tokens, 0),
        tokens_source=job.tokens_source,
    )


def _job_speedup(
    job: PlannedJob,
    s: Setup,
    ref: Reference,
    plan: dict,
    params: float,
    used: int,
    memory: float | None,
) -> tuple[float, str]:
    """(speed-up on ``used`` GPUs, where it comes from): a data-parallel training job's measured
    one (:meth:`Reference.speedup`), else ``1 + (used - 1) x plan.scaling[key]``."""
    key = job.scaling_key or job.kind
    unmeasured = ""
    if used > 1 and job.sharded and job.kind == "train":
        recipe = recipe_on(job, params, used, memory)[0]
        got = ref.speedup(job.kind, recipe, bool(job.packing), s.gpu, params, used)
        if got is not None:
            return got[0], f"{recipe}, {got[1]}"
        unmeasured = f"{recipe}{UNMEASURED}"
    per = plan["scaling"][key]
    return 1 + (used - 1) * per, f"{unmeasured}1 + ({used}-1) x {per:g} (plan.scaling.{key})"


def _memory_need(
    job: PlannedJob, tp: Throughput, params: float, plan: dict, used: int, mem: float | None
) -> tuple[float, str]:
    """(GB per GPU, how): the measured peak where one was recorded, else the formula's."""
    measured = measured_need_gb(job, tp.measurement, plan)
    if measured is not None:
        return measured
    need, need_what = memory_need_gb(job, params, plan, used, mem)
    if job.memory_measured:
        need_what += f"; no measured peak at {job.policy}: activations not counted"
    return need, need_what


def _unfit(job: PlannedJob, s: Setup, params: float, plan: dict, need: str, mem: float) -> str:
    """The note of a job that does not fit a setup's GPU memory, with the fix."""
    why = f"does not fit: needs {need} > {mem} GB ({s.gpu})"
    if job.sharded and job.kind == "train":
        n = fewest_gpus(job, params, plan, mem, _MOST_GPUS)
        why += (
            f"; fits from {n} GPUs of it (resources gpu >= {n}, a setup of >= {n} GPUs)"
            if n
            else f"; fits on no {s.gpu} machine of up to {_MOST_GPUS} GPUs"
        )
    elif job.unfit_note:
        why += f"; {job.unfit_note}"
    return why


def job_row(
    job: PlannedJob,
    s: Setup,
    price: Price,
    ref: Reference,
    ms: list[Measurement],
    plan: dict,
    downloads: bool = True,
) -> dict[str, Any]:
    """The estimate of one job on one setup (``downloads``: see :func:`job_overhead`)."""
    row = _job_columns(job, s, price)
    notes = list(job.notes)
    if ref.problem:
        notes.append(f"measurements file unusable: {ref.problem}")
    if job.params is None:
        notes.insert(0, f"no estimate: {job.params_source}")
        return dict(row, note="; ".join(notes))
    params = job.params
    tp = pick_throughput(job, s.gpu, ms, ref, plan)
    used = s.count if job.gpus is None else max(1, min(job.gpus, s.count))
    mem = None if s.gpu == CPU else (ref.gpus.get(s.gpu) or {}).get("memory_gb")
    speedup, speedup_what = _job_speedup(job, s, ref, plan, params, used, mem)
    job_s, job_what = job_overhead(job, s, params, plan, ref, downloads)
    rent_s, rent_what = rental_overhead(job, s, params, plan)
    need, need_what = _memory_need(job, tp, params, plan, used, mem)
    fits = "n/a" if mem is None else ("yes" if need <= mem else "no")
    on = f"on {used} GPU{'s' if used > 1 else ''}"
    notes += [
        f"job overhead: {job_what}",
        f"rental overhead: {rent_what}",
        f"memory: needs {need:.3g} GB per GPU {on} ({need_what})"
        + (f" vs {mem} GB" if mem else ""),
    ]
    if used > 1:
        notes.append(f"speedup {speedup:.3g} on {used} GPUs: {speedup_what}")
    compute = job.tokens / (tp.tok_s_per_gpu * speedup) if tp.tok_s_per_gpu and job.tokens else None
    compute = _with_extras(compute, job, s, ms, ref, plan, notes, used)
    if fits == "no":
        notes.insert(0, _unfit(job, s, params, plan, f"{need:.3g} GB per GPU {on}", mem))
        compute = None
    est_job = None if compute is None else compute + job_s
    est = None if est_job is None else est_job + rent_s
    interrupted = None
    if s.interruptible and est is not None:  # billed time only; est_job_s is one attempt's
        restart_s = job_s + rental_overhead(job, s, params, plan, restart=True)[0]
        interrupted, how = interruption_overhead(job, est, compute, restart_s, params, plan)
        if interrupted is None:
            notes.insert(0, f"no estimate on an interruptible instance: {how}")
            est = None
        else:
            notes.append(f"interruptible: + {interrupted:.0f} s expected restarts ({how})")
            est += interrupted
    cost = None if est is None or price.per_hour is None else est / 3600 * price.per_hour
    return dict(
        row,
        tok_s_per_gpu=None if tp.tok_s_per_gpu is None else float(f"{tp.tok_s_per_gpu:.6g}"),
        throughput_source=tp.source,
        speedup=_r(speedup, 3),
        compute_s=_r(compute),
        job_overhead_s=_r(job_s),
        rental_overhead_s=_r(rent_s),
        interruption_s=_r(interrupted),
        est_job_s=_r(est_job),
        est_s=_r(est),
        memory_gb=_r(need),
        fits_memory=fits,
        est_cost_usd=_r(cost, 2),
        note="; ".join(notes),
        measured_run_id=tp.measurement.run_id if tp.measurement else None,
    )


def _cached_row(job: PlannedJob, s: Setup, price: Price) -> dict[str, Any]:
    """A job the run cache holds: restored, not run, so no cost."""
    zero = dict.fromkeys(
        ("compute_s", "job_overhead_s", "rental_overhead_s", "est_job_s", "est_s"), 0.0
    )
    return dict(
        _job_columns(job, s, price),
        est_cost_usd=0.0,
        note="in the run cache: restored, not run (config key run_cache)",
        **zero,
    )


def _total_row(
    s: Setup, price: Price, jobs: list[PlannedJob], rows: list[dict], plan: dict
) -> dict[str, Any]:
    """A setup's time and cost: its jobs in sequence, or side by side (:func:`makespan`)."""
    missing = [r["job"] for r in rows if r.get("est_s") is None]
    unfit = [r["job"] for r in rows if r.get("fits_memory") == "no"]
    unpriced = price.per_hour is None
    total_s = None if missing else sum(r["est_s"] for r in rows)
    side_by_side = s.count > 1 and s.gpu != CPU
    if side_by_side and total_s is not None:
        slots = [
            Slot(j.id, r["est_s"], s.count if j.gpus is None else j.gpus, j.after)
            for j, r in zip(jobs, rows, strict=True)
        ]
        total_s = makespan(slots, s.count)
    boot = ""
    if s.machine and total_s is not None:  # billed before its first job
        o = plan["overheads"]
        total_s += o["boot_s"] + o["setup_s"]
        boot = (
            f"; + {o['boot_s'] + o['setup_s']:.0f} s to rent the machine once "
            f"(boot {o['boot_s']:.0f} + setup {o['setup_s']:.0f})"
        )
    if side_by_side:
        how = (
            f"one {s.label} machine: jobs side by side on its {s.count} GPUs where their "
            "inputs allow (each its gpu resource's devices)"
        )
    elif s.local or s.machine:
        how = "jobs run one after another " + ("here" if s.local else "on the one machine")
    else:
        bid = "interruptible instance (restarts included)" if s.interruptible else "instance"
        how = f"jobs run one after another, each on its own {bid}"

    def summed(key: str) -> float | None:
        return None if missing else sum(r[key] for r in rows)

    return dict(
        _setup_columns(s, price),
        job=TOTAL,
        kind="",
        model="",
        policy="",
        tokens=_r(None if missing else sum(j.tokens for j in jobs), 0),
        tokens_source="sum of the jobs",
        est_s=_r(total_s),
        est_job_s=_r(summed("est_job_s")),
        interruption_s=_r(
            None
            if missing or not s.interruptible
            else sum(r.get("interruption_s") or 0.0 for r in rows)
        ),
        compute_s=_r(summed("compute_s")),
        est_cost_usd=_r(
            None if total_s is None or unpriced else total_s / 3600 * price.per_hour, 2
        ),
        note=how
        + boot
        + (f"; no estimate for {', '.join(missing)}" if missing else "")
        + (f" (does not fit in memory: {', '.join(unfit)})" if unfit else "")
        + ("; no price" if unpriced else ""),
    )


def estimate(
    jobs: list[PlannedJob],
    setups: list[Setup],
    prices: dict[Setup, Price],
    ref: Reference,
    measurements: list[Measurement],
    plan: dict,
    in_cache: Callable[[PlannedJob], bool] | None = None,
) -> pd.DataFrame:
    """One row per (setup, job) plus a TOTAL row per setup."""
    rows = []
    cached = {j.id for j in jobs if in_cache is not None and in_cache(j)}
    for s in setups:
        job_rows = []
        downloads = downloads_on(s, [j for j in jobs if j.id not in cached])
        for job in jobs:
            if job.id in cached:
                job_rows.append(_cached_row(job, s, prices[s]))
                continue
            try:
                job_rows.append(
                    job_row(job, s, prices[s], ref, measurements, plan, downloads[job.id])
                )
            except Exception as exc:  # a forecast never stops a study: the row says what failed
                log.warning("planner: no estimate for %s on %s: %r", job.id, s.label, exc)
                note = f"no estimate: {type(exc).__name__}: {exc}"
                job_rows.append(dict(_job_columns(job, s, prices[s]), note=note))
        rows += job_rows
        rows.append(_total_row(s, prices[s], jobs, job_rows, plan))
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = None
    return df[COLUMNS]
