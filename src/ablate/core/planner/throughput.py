"""Tokens per second per GPU for a planned job on a setup: measured, scaled, or the FLOP estimate."""

from __future__ import annotations

from dataclasses import dataclass

from ablate.core.planner.inputs import CPU, Measurement, Reference
from ablate.core.planner.planned_jobs import PlannedJob
from ablate.core.planner.totals import FLOP_ESTIMATE

#: Matmul FLOPs per token per parameter: forward 2, forward + backward 6 (Kaplan et al. 2020).
_FLOPS_PER_PARAM_TOKEN = {"train": 6, "eval": 2, "probe": 2, "generate": 2}


@dataclass
class Throughput:
    tok_s_per_gpu: float | None
    source: str
    measurement: Measurement | None = None


def _packing_match(m: Measurement, job: PlannedJob) -> int:
    """2: the same packing mode; 1: a measurement of full rows (no mode); 0: the other mode."""
    if m.packing is None:
        return 2 if job.packing is None else 1
    return 2 if m.packing == bool(job.packing) else 0


def _best_measurement(
    job: PlannedJob,
    gpu: str,
    ms: list[Measurement],
    ref: Reference,
    plan: dict,
    target_peak: float | None,
) -> tuple[Measurement | None, tuple | None]:
    """The measurement that fits the job best and its preference key; (None, None): none counts."""
    params = job.params
    best, best_key = None, None
    kinds = ("probe", "eval") if job.kind == "probe" else (job.kind,)  # both forward-only
    for m in ms:
        if m.kind not in kinds or abs(m.params - params) > 0.05 * params:
            continue
        if (m.gpu == CPU) != (gpu == CPU):
            continue
        ga = (job.train_shape or {}).get("grad_accum")
        if m.kind == "train" and m.grad_accum and ga and m.grad_accum != ga:
            continue  # another optimizer-step share per token: its rate does not carry over
        if m.gpu != gpu and (target_peak is None or ref.peak_flops(m.gpu, plan)[0] is None):
            continue
        # the pipeline's own runs beat a bench table, a bench of the same recipe (optimizer) beats
        # another; then the same rule (finetune, not pretraining), the same policy (it changes
        # speed by ~2-8 % only), the same job
        group = (m.job or "").split("/")[0] == job.id.split("/")[0]
        key = (
            m.kind == job.kind,
            _packing_match(m, job),
            m.compile_layers == job.compile_layers,
            m.gpu == gpu,
            m.origin == "pipeline",
            m.optim == job.optim,
            group,
            m.policy == job.policy,
            m.job == job.id,
        )
        if best_key is None or key > best_key:
            best, best_key = m, key
    return best, best_key


def _measured(
    job: PlannedJob,
    gpu: str,
    best: Measurement,
    best_key: tuple,
    ref: Reference,
    plan: dict,
    target_peak: float | None,
) -> Throughput:
    """The job's rate from its best measurement, scaled where FLOPs/token or GPU differ."""
    policy_note = (
        "" if best.policy == job.policy else f", policy {best.policy} (none for {job.policy})"
    )
    if best_key[1] == 0:
        policy_note += f", packing {best.packing} (none for packing {bool(job.packing)})"
    if best.kind != job.kind:
        policy_note += f", {best.kind} rate for this forward-only {job.kind}"
    rate = best.tokens_per_s
    if job.flops_per_token and best.flops_per_token:  # same model, other work per token
        rate *= best.flops_per_token / job.flops_per_token
        policy_note += (
            f", x {best.flops_per_token / job.flops_per_token:.3g} for its FLOPs/token "
            f"({best.flops_per_token / 1e9:.4g} measured vs {job.flops_per_token / 1e9:.4g} G)"
        )
    if best.gpu == gpu:
        return Throughput(rate, f"measured on {gpu}{policy_note}: {best.source}", best)
    src_peak = ref.peak_flops(best.gpu, plan)[0]
    tok_s = rate * target_peak / src_peak
    return Throughput(
        tok_s,
        f"measured on {best.gpu}{policy_note}, scaled by peak FLOP/s {src_peak / 1e12:g}->"
        f"{target_peak / 1e12:g} T: {best.source}",
        best,
    )


def pick_throughput(
    job: PlannedJob, gpu: str, ms: list[Measurement], ref: Reference, plan: dict
) -> Throughput:
    """Best measured tokens/s for this job on this GPU, else the FLOP estimate. The packing mode
    ranks early: a step of short unpacked rows runs ~10x below a packed one (docs/benchmarks.md)."""
    params = job.params
    if params is None:
        return Throughput(None, f"no throughput: {job.params_source}")
    target_peak, peak_src = ref.peak_flops(gpu, plan)
    best, best_key = _best_measurement(job, gpu, ms, ref, plan, target_peak)
    if best is not None:
        return _measured(job, gpu, best, best_key, ref, plan, target_peak)
    if target_peak is None:
        return Throughput(None, f"no measurement and {peak_src}")
    mfu = plan["mfu"][job.kind]
    k = _FLOPS_PER_PARAM_TOKEN[job.kind]
    flops, what = (
        (job.flops_per_token, f"{job.flops_per_token / 1e9:.4g} GFLOP/token (the study's count)")
        if job.flops_per_token
        else (k * params, f"{k} x params")
    )
    tok_s = mfu * target_peak / flops
    return Throughput(
        tok_s,
        f"{FLOP_ESTIMATE}: nothing measured for {job.kind} of a {params / 1e9:.3g} B model; "
        f"{mfu:g} MFU x {target_peak / 1e12:g} TFLOP/s / ({what}) [peak: {peak_src}]",
    )
