"""HF Adafactor's update as torch.compile'd functions, one call per group of like parameters.

HF's loop runs ~10 fp32 passes per parameter plus the clip's: with few tokens per step that fixed
cost dominates. :class:`FusedAdafactor` computes the same update (``optim: adafactor``'s options)
fused, the clip factor taken as the AMP ``grad_scale`` divisor; its state has HF's layout, so
either loads the other's (tests/core/training/test_adafactor.py). A parameter sharded on dim 0
(FSDP2) steps its local rows, the statistics that span dim 0 summed over the shards, so every
process computes the unsharded update of its rows.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Replicate, Shard
from transformers.optimization import Adafactor

from ablate.upstream import pytorch


def _rms(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t) / math.sqrt(t.numel())


def _finish(p, update, scal, clip_threshold: float, mirror) -> None:
    """HF's tail: the update clipped to RMS ``clip_threshold``, times lr; weight decay; the add.
    ``mirror``: the model's 16-bit weight, written in the same kernel."""
    lr, weight_decay = scal[0], scal[2]
    update = update / (_rms(update) / clip_threshold).clamp(min=1.0) * lr
    new = p + p * (-weight_decay * lr) - update
    p.copy_(new)
    if mirror is not None:
        mirror.copy_(new)


def _factored(p, grad, row, col, scal, scale, eps: float, clip_threshold: float, mirror) -> None:
    """One step of a >= 2-D parameter in place; ``scal`` = (lr, beta2t, weight_decay)."""
    beta2t = scal[1]
    grad = grad.float() / scale
    sq = grad * grad + eps
    row.copy_(row * beta2t + sq.mean(dim=-1) * (1.0 - beta2t))
    col.copy_(col * beta2t + sq.mean(dim=-2) * (1.0 - beta2t))
    r_factor = (row / row.mean(dim=-1, keepdim=True)).rsqrt().unsqueeze(-1)
    c_factor = col.unsqueeze(-2).rsqrt()
    _finish(p, r_factor * c_factor * grad, scal, clip_threshold, mirror)


def _unfactored(p, grad, sq_avg, scal, scale, eps: float, clip_threshold: float, mirror) -> None:
    """One step of a 1-D parameter in place (a full second moment)."""
    beta2t = scal[1]
    grad = grad.float() / scale
    sq_avg.copy_(sq_avg * beta2t + (grad * grad + eps) * (1.0 - beta2t))
    _finish(p, sq_avg.rsqrt() * grad, scal, clip_threshold, mirror)


def _factored_many(ps, grads, rows, cols, mirrors, scal, scale, eps: float, clip: float):
    """:func:`_factored` for parameters of one shape, as one compiled call (a call per parameter
    costs host time that left the GPU idle)."""
    for i in range(len(ps)):
        _factored(ps[i], grads[i], rows[i], cols[i], scal, scale, eps, clip, mirrors[i])


def _unfactored_many(ps, grads, sq_avgs, mirrors, scal, scale, eps: float, clip: float):
    for i in range(len(ps)):
        _unfactored(ps[i], grads[i], sq_avgs[i], scal, scale, eps, clip, mirrors[i])


def shard_sums(partials: list[torch.Tensor], group) -> list[torch.Tensor]:
    """Each of ``partials`` summed over every shard of ``group``, in one all-reduce of them all
    (tests/core/launch_hooks.py replaces it to show the sharded tests catch a missing sum)."""
    if not partials:
        return []
    flat = torch.cat([t.reshape(-1) for t in partials])
    dist.all_reduce(flat, group=group)
    return [t.view_as(part) for t, part in zip(flat.split([t.numel() for t in partials]), partials)]


# A shard steps in three phases with one all-reduce between them (:meth:`_step_shards`); the
# update is recomputed in the last: keeping it would hold a second fp32 copy of the shards.


class _Shard(NamedTuple):
    """One sharded parameter's local step inputs; ``shape`` is the whole parameter's."""

    w: torch.Tensor
    g: torch.Tensor
    state: dict
    scal: torch.Tensor
    eps: float
    clip: float
    shape: torch.Size

    @property
    def matrix(self) -> bool:
        return len(self.shape) == 2

    @classmethod
    def of(cls, p: DTensor, grad: DTensor, state: dict, scal, eps: float, clip: float) -> _Shard:
        if tuple(p.placements) != (Shard(0),) or p.dim() not in (1, 2):
            raise RuntimeError(
                "FusedAdafactor steps 1-D and 2-D parameters sharded on dim 0, not a "
                f"{p.dim()}-D one placed {p.placements}"
            )
        local = {k: v.to_local() if isinstance(v, DTensor) else v for k, v in state.items()}
        return cls(p.to_local(), grad.to_local(), local, scal, eps, clip, p.shape)


def _matrix_update(g, row, col, row_mean, scale):
    return (row / row_mean).rsqrt().unsqueeze(-1) * col.unsqueeze(-2).rsqrt() * (g.float() / scale)


def _matrix_means_many(gs, rows, scal, shape, eps: float, clip: float, scale):
    out = []
    for i in range(len(gs)):
        g = gs[i].float() / scale
        sq = g * g + eps
        rows[i].copy_(rows[i] * scal[1] + sq.mean(dim=-1) * (1.0 - scal[1]))
        out.append(sq.sum(dim=-2) / shape[0])  # divided before the sum: the mean over all rows
        out.append(rows[i].sum(dim=-1, keepdim=True) / shape[0])
    return out


def _matrix_sumsq_many(gs, rows, cols, col_means, row_means, scal, shape, eps, clip, scale):
    out = []
    for i in range(len(gs)):
        cols[i].copy_(cols[i] * scal[1] + col_means[i] * (1.0 - scal[1]))
        u = _matrix_update(gs[i], rows[i], cols[i], row_means[i], scale)
        out.append((u * u).sum())
    return out


def _shard_finish(w, u, sumsq, scal, shape, clip: float) -> None:
    """HF's tail (as :func:`_finish`) on a shard: the update's RMS is the whole parameter's."""
    u = u / ((sumsq / shape.numel()).sqrt() / clip).clamp(min=1.0) * scal[0]
    w.copy_(w + w * (-scal[2] * scal[0]) - u)


def _matrix_apply_many(ws, gs, rows, cols, row_means, sumsqs, scal, shape, eps, clip, scale):
    for i in range(len(ws)):
        u = _matrix_update(gs[i], rows[i], cols[i], row_means[i], scale)
        _shard_finish(ws[i], u, sumsqs[i], scal, shape, clip)


def _vector_sumsq_many(gs, sq_avgs, scal, shape, eps: float, clip: float, scale):
    out = []
    for i in range(len(gs)):
        g = gs[i].float() / scale
        sq_avgs[i].copy_(sq_avgs[i] * scal[1] + (g * g + eps) * (1.0 - scal[1]))
        u = sq_avgs[i].rsqrt() * g
        out.append((u * u).sum())
    return out


def _vector_apply_many(ws, gs, sq_avgs, sumsqs, scal, shape, eps, clip, scale):
    for i in range(len(ws)):
        u = sq_avgs[i].rsqrt() * (gs[i].float() / scale)
        _shard_finish(ws[i], u, sumsqs[i], scal, shape, clip)


_EAGER = {
    "factored": _factored_many,
    "unfactored": _unfactored_many,
    "matrix_means": _matrix_means_many,
    "matrix_sumsq": _matrix_sumsq_many,
    "matrix_apply": _matrix_apply_many,
    "vector_sumsq": _vector_sumsq_many,
    "vector_apply": _vector_apply_many,
}
# compiled once per process, by (name, dynamic)
_compiled: dict[tuple[str, bool | None], object] = {}
_RECOMPILE_LIMIT = 64


def _run(name: str, dynamic: bool | None, *args):
    """The compiled step; where torch.compile fails on a host (raised before the step writes
    anything), the same function eagerly from then on, with one warning."""
    key = (name, dynamic)
    if key not in _compiled:
        _compiled[key] = torch.compile(_EAGER[name], fullgraph=True, dynamic=dynamic)
    try:
        with pytorch.recompile_limit_at_least(_RECOMPILE_LIMIT):
            return _compiled[key](*args)
    except pytorch.compile_error() as exc:
        if _compiled[key] is _EAGER[name]:
            raise
        warnings.warn(
            f"FusedAdafactor: torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
            "its update runs uncompiled (same numbers, slower)",
            stacklevel=2,
        )
        _compiled[key] = _EAGER[name]
        return _EAGER[name](*args)


@pytorch.takes_grad_scale_class  # MasterWeightsOptimizer.clip_ hands the clip as grad_scale
class FusedAdafactor(Adafactor):
    """``Adafactor(scale_parameter=False, relative_step=False, warmup_init=False, beta1=None)``
    with a fused, grouped step; fp32 parameters only. ``grads`` (gradients of parameters without
    ``.grad``) and ``mirrors`` (16-bit weights also written) save passes over the masters; the
    defaults of ``group_size`` and ``dynamic``: bench/results/bench_optimizer_h100.md."""

    takes_low_precision_grads = True  # and its gradients as ``grads``, uncast

    def __init__(self, params, group_size: int = 4, dynamic: bool | None = True, **kwargs):
        super().__init__(params, **kwargs)
        self.group_size, self.dynamic = group_size, dynamic
        for g in self.param_groups:
            if g["relative_step"] or g["scale_parameter"] or g["beta1"] is not None:
                raise ValueError(
                    "FusedAdafactor implements relative_step=False, scale_parameter=False, "
                    "beta1=None only (optim: adafactor)"
                )
        self.grads: dict[torch.Tensor, torch.Tensor] = {}
        self.mirrors: dict[torch.Tensor, torch.Tensor] = {}

    @staticmethod
    def supports(kwargs: dict) -> bool:
        """Whether this class computes these Adafactor kwargs exactly."""
        return (
            not kwargs.get("relative_step", True)
            and not kwargs.get("scale_parameter", True)
            and not kwargs.get("warmup_init", False)
            and kwargs.get("beta1") is None
        )

    def _init_state(self, p: torch.Tensor, state: dict) -> None:
        rms = state.get("RMS")
        if isinstance(rms, torch.Tensor) and rms.device == p.device:
            return  # ready (checked per step: a few attribute reads, not tensor ops)
        if state:  # loaded (HF keeps the moments in the grad's dtype/device: so do we)
            for k in ("exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_sq"):
                if k in state:
                    state[k] = state[k].to(p)
            state["RMS"] = torch.as_tensor(rms, dtype=p.dtype, device=p.device)
            return
        state["step"] = 0
        if p.dim() >= 2:
            state["exp_avg_sq_row"] = p.new_zeros(p.shape[:-1])
            state["exp_avg_sq_col"] = p.new_zeros(p.shape[:-2] + p.shape[-1:])
        else:
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["RMS"] = p.new_zeros(())

    @staticmethod
    def _init_sharded_state(p: DTensor, state: dict) -> None:
        """The state of a parameter sharded on dim 0, as DTensors sharded like it (a loaded one
        is ready)."""
        if state:
            return
        mesh, w = p.device_mesh, p.to_local()

        def rows(local: torch.Tensor, shape: torch.Size) -> DTensor:
            stride = torch.empty(shape, device="meta").stride()
            return DTensor.from_local(local, mesh, [Shard(0)], shape=shape, stride=stride)

        state["step"] = 0
        if p.dim() >= 2:
            state["exp_avg_sq_row"] = rows(w.new_zeros(w.shape[:-1]), p.shape[:-1])
            col = w.new_zeros(w.shape[:-2] + w.shape[-1:])
            state["exp_avg_sq_col"] = (
                DTensor.from_local(col, mesh, [Replicate()])  # all-reduced: the same everywhere
                if p.dim() == 2
                else rows(col, p.shape[:-2] + p.shape[-1:])
            )
        else:
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["RMS"] = w.new_zeros(())

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if getattr(self, "found_inf", None) is not None:
            raise RuntimeError("FusedAdafactor does not implement fp16 loss scaling (found_inf)")
        grad_scale = getattr(self, "grad_scale", None)
        scalars: dict = {}  # (device, lr, step, weight_decay) -> one host-to-device copy
        calls: dict[tuple, list] = {}  # one compiled call per group of like parameters
        shards: list[tuple] = []  # parameters sharded on dim 0, in parameter order
        for group in self.param_groups:
            eps, clip = float(group["eps"][0]), float(group["clip_threshold"])
            for p in group["params"]:
                grad = p.grad if p.grad is not None else self.grads.get(p)
                if grad is None:
                    continue
                if p.dtype != torch.float32 or grad.is_sparse:
                    raise RuntimeError("FusedAdafactor steps dense fp32 parameters only")
                state = self.state[p]
                sharded = isinstance(p, DTensor)
                if sharded:
                    self._init_sharded_state(p, state)
                else:
                    self._init_state(p, state)
                state["step"] += 1
                key = (p.device, group["lr"], state["step"], group["weight_decay"])
                if key not in scalars:
                    beta2t = 1.0 - math.pow(state["step"], group["decay_rate"])
                    values = [group["lr"], beta2t, group["weight_decay"]]
                    scalars[key] = _to_device(values, p.device)
                if sharded:
                    shards.append((p, grad, state, scalars[key], eps, clip))
                    continue
                mirror = self.mirrors.get(p)
                kind = "factored" if p.dim() >= 2 else "unfactored"
                like = (kind, key, eps, clip, p.shape, grad.dtype, mirror is None)
                calls.setdefault(like, []).append((p, grad, state, mirror))
        for (kind, key, eps, clip, *_), like_members in calls.items():
            for at in range(0, len(like_members), self.group_size):
                members = like_members[at : at + self.group_size]
                self._call(kind, members, scalars[key], grad_scale, eps, clip)
        if shards:
            self._step_shards(shards, grad_scale)
        return loss

    def _step_shards(self, shards: list[tuple], grad_scale) -> None:
        """The step of every parameter sharded on dim 0: each phase's cross-shard sums of all of
        them in one all-reduce, listed in parameter order on every process."""
        groups = {p.device_mesh.get_group() for p, *_ in shards}
        if len(groups) != 1:
            raise RuntimeError("FusedAdafactor steps parameters sharded over one process group")
        group = groups.pop()
        scale = grad_scale if grad_scale is not None else _one(shards[0][0].device)
        local = [_Shard.of(*member) for member in shards]
        like: dict[tuple, list[int]] = {}  # one compiled call per group of like shards
        for i, sh in enumerate(local):
            key = (sh.matrix, id(sh.scal), sh.eps, sh.clip, sh.shape, sh.w.shape, sh.g.dtype)
            like.setdefault(key, []).append(i)
        calls = [
            (idx[0], idx[at : at + self.group_size])
            for idx in like.values()
            for at in range(0, len(idx), self.group_size)
        ]

        def run(name, idx, *lists):
            sh = local[idx[0]]  # the call's constants: like shards share them
            args = (*([x[i] for i in idx] for x in lists), sh.scal, sh.shape, sh.eps, sh.clip)
            if not sh.w.is_cuda:  # compiling costs seconds on a CPU and saves little there
                return _EAGER[name](*args, scale)
            return _run(name, self.dynamic, *args, scale)

        ws, gs = [sh.w for sh in local], [sh.g for sh in local]
        rows = [sh.state.get("exp_avg_sq_row") for sh in local]
        cols = [sh.state.get("exp_avg_sq_col") for sh in local]
        sq_avgs = [sh.state.get("exp_avg_sq") for sh in local]
        # (1) the row statistics; this shard's part of the column means and of the mean row
        matrices = [i for i in range(len(local)) if local[i].matrix]
        parts: dict[int, list] = {}
        for first, idx in calls:
            if local[first].matrix:
                out = run("matrix_means", idx, gs, rows)
                parts.update((i, out[2 * j : 2 * j + 2]) for j, i in enumerate(idx))
        summed = shard_sums([t for i in matrices for t in parts[i]], group)
        col_means, row_means = [None] * len(local), [None] * len(local)
        for k, i in enumerate(matrices):
            col_means[i], row_means[i] = summed[2 * k], summed[2 * k + 1]
        # (2) the column statistics; this shard's part of each update's sum of squares
        sumsqs: list = [None] * len(local)
        for first, idx in calls:
            if local[first].matrix:
                out = run("matrix_sumsq", idx, gs, rows, cols, col_means, row_means)
            else:
                out = run("vector_sumsq", idx, gs, sq_avgs)
            for j, i in enumerate(idx):
                sumsqs[i] = out[j]
        sumsqs = shard_sums(sumsqs, group)
        # (3) the updates, clipped to the whole parameters' RMS, applied
        for first, idx in calls:
            if local[first].matrix:
                run("matrix_apply", idx, ws, gs, rows, cols, row_means, sumsqs)
            else:
                run("vector_apply", idx, ws, gs, sq_avgs, sumsqs)

    def _call(self, kind, members, scal, grad_scale, eps: float, clip: float) -> None:
        ps, grads, states, mirrors = (list(t) for t in zip(*members))
        moments = (
            [[s["exp_avg_sq_row"] for s in states], [s["exp_avg_sq_col"] for s in states]]
            if kind == "factored"
            else [[s["exp_avg_sq"] for s in states]]
        )
        scale = grad_scale if grad_scale is not None else _one(ps[0].device)
        _run(kind, self.dynamic, ps, grads, *moments, mirrors, scal, scale, eps, clip)


def _to_device(values: list[float], device: torch.device) -> torch.Tensor:
    """``values`` as an fp32 tensor on ``device``; to a GPU through pinned memory: a pageable copy
    would make the host wait for the backward before it queues the step."""
    host = torch.tensor(values, dtype=torch.float32)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


@functools.cache
def _one(device: torch.device) -> torch.Tensor:
    """A cached 1.0 on ``device``: the divisor when no clip is pending."""
    return torch.ones((), dtype=torch.float32, device=device)
