"""The data-parallel recipe of a model whose 16-bit weights fit every GPU: the one-GPU recipe
(16-bit weights, fp32 masters stepped by any torch optimizer) with the fp32 masters and the
optimizer's state sharded over the N processes, each owning whole parameters (ZeRO stage 1).

Whole parameters, so an optimizer whose statistics span one (Adafactor's) steps exactly as on one
GPU. Buckets and collectives: docs/training.md ("sharded_masters"). Its state_dict is the one-GPU
optimizer's, so a checkpoint resumes on any number of processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ablate.core.training.optim import (
    MasterWeightsOptimizer,
    decay_groups,
    fused_inner,
    optimizer_class,
)
from ablate.core.training.params import TrainParams
from ablate.upstream import pytorch


def build(model: torch.nn.Module, p: TrainParams) -> ShardedMastersOptimizer:
    """The optimizer of ``p`` on sharded masters of ``model``'s weights, whatever their dtype."""
    cls, kwargs = optimizer_class(p)
    groups = decay_groups(model, p.weight_decay)
    params = [t for g in groups for t in g["params"]]
    return ShardedMastersOptimizer(
        groups, fused_inner(cls, kwargs, params), kwargs, order=backward_order(model, params)
    )


def backward_order(model: torch.nn.Module, params: list[torch.Tensor]) -> list[int]:
    """The indices of ``params`` in about the order a backward produces their gradients: the
    model's order reversed (the groups' order is not the model's)."""
    position = {id(t): k for k, t in enumerate(model.parameters())}
    return sorted(range(len(params)), key=lambda i: position[id(params[i])], reverse=True)


def owners(sizes: list[int], world: int) -> list[int]:
    """The process that owns each parameter (of ``sizes`` elements): the largest first, each to
    the process with the fewest elements so far (ties: the lowest rank)."""
    load, owner = [0] * world, [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i], load[r] = r, load[r] + sizes[i]
    return owner


#: The parameters in about this many buckets of similar size (:func:`_cut`): all but the last
#: bucket's reduce-scatter run beside the backward
_BUCKETS = 16
#: A bucket closes once the padding of its owners' parts is at most this share of its elements
#: (every padded element crosses the wire too)
PADDING = 1 / 32


def _padded(sizes: list[int], world: int) -> int:
    """Elements of a bucket of parameters of ``sizes``, each process's part padded to the
    largest."""
    owner = owners(sizes, world)
    return world * max(sum(s for s, o in zip(sizes, owner) if o == r) for r in range(world))


def _cut(sizes: list[int], world: int, order: list[int]) -> list[list[int]]:
    """The parameters in buckets of about a :data:`_BUCKETS`-th, taken in the backward's
    ``order``, balanced within :data:`PADDING`; a last weight of a bucket's worth (tied
    embeddings: their gradient comes last) is a bucket alone, so that no weight waits for it."""
    target = sum(sizes) / _BUCKETS
    alone = [order[-1]] if world > 1 and sizes[order[-1]] >= target else []
    out: list[list[int]] = []
    current: list[int] = []

    def balanced(bucket: list[int]) -> bool:
        elements = sum(sizes[i] for i in bucket)
        return _padded([sizes[i] for i in bucket], world) <= elements * (1 + PADDING)

    for i in order[: len(order) - len(alone)]:
        current.append(i)
        if sum(sizes[j] for j in current) >= target and balanced(current):
            out.append(current)
            current = []
    if current:
        out.append(current)
    while len(out) > 1 and not balanced(out[-1]):
        last = out.pop()
        out[-1] += last
    return [*out, alone] if alone else out


@dataclass(frozen=True)
class _Bucket:
    """Parameters reduced and gathered together, process r's part at ``start + r * part`` in the
    flat buffers; or one weight of process ``owner`` (reduced to it, broadcast from it)."""

    params: tuple[int, ...]
    start: int
    part: int
    owner: int | None = None

    def size(self, world: int) -> int:
        return self.part if self.owner is not None else world * self.part

    def whole(self, flat: torch.Tensor, world: int) -> torch.Tensor:
        return flat[self.start : self.start + self.size(world)]

    def own(self, flat: torch.Tensor, rank: int) -> torch.Tensor:
        if self.owner is not None:
            return flat[self.start : self.start + (self.part if rank == self.owner else 0)]
        at = self.start + rank * self.part
        return flat[at : at + self.part]


def layout(
    sizes: list[int], world: int, order: list[int]
) -> tuple[list[_Bucket], list[int], list[int]]:
    """(the buckets, each parameter's owner, each parameter's offset in the flat buffers)."""
    buckets, owner, offsets, start = [], [0] * len(sizes), [0] * len(sizes), 0
    load = [0] * world
    for members in _cut(sizes, world, order):
        if len(members) == 1 and world > 1:
            (i,) = members
            r = min(range(world), key=lambda r: (load[r], r))
            owner[i], offsets[i], load[r] = r, start, load[r] + sizes[i]
            buckets.append(_Bucket((i,), start, sizes[i], owner=r))
            start += sizes[i]
            continue
        mine = owners([sizes[i] for i in members], world)
        part = _padded([sizes[i] for i in members], world) // world
        at = [start + r * part for r in range(world)]
        for i, r in zip(members, mine):
            owner[i], offsets[i], at[r], load[r] = r, at[r], at[r] + sizes[i], load[r] + sizes[i]
        buckets.append(_Bucket(tuple(members), start, part))
        start += world * part
    return buckets, owner, offsets


class ShardedMastersOptimizer(MasterWeightsOptimizer):
    """:class:`~.optim.MasterWeightsOptimizer` over N processes, the gradients averaged as FSDP's
    and DDP's are; ``order``: :func:`backward_order` (unset: the groups' order reversed)."""

    def __init__(
        self,
        param_groups: list[dict],
        inner_cls,
        inner_kwargs: dict,
        order: list[int] | None = None,
    ):
        self.world, self.rank = dist.get_world_size(), dist.get_rank()
        params = [p for g in param_groups for p in g["params"]]
        if len(params) < self.world:
            raise ValueError(
                f"{len(params)} trained weights cannot be owned by {self.world} processes"
            )
        if len({(p.dtype, p.device) for p in params}) != 1:
            raise ValueError("sharded masters need every trained weight of one dtype and device")
        if order is None:
            order = list(reversed(range(len(params))))
        sizes = [p.numel() for p in params]
        self.buckets, self.owner, self.offsets = layout(sizes, self.world, order)
        self.bucket_of = [0] * len(params)
        for b, bucket in enumerate(self.buckets):
            for i in bucket.params:
                self.bucket_of[i] = b
        first, size = params[0], sum(b.size(self.world) for b in self.buckets)
        self.flat_weights = torch.zeros(size, dtype=first.dtype, device=first.device)
        self.flat_grads = torch.zeros(size, dtype=torch.float32, device=first.device)
        with torch.no_grad():
            for i, p in enumerate(params):
                self._slot(self.flat_weights, i, p).copy_(p)
        self.model_params = params
        self.plain = first.dtype == torch.float32  # masters equal to the weights
        # the weights keep their own storage: each all-gather's result is copied into them
        self.slots = [self._slot(self.flat_weights, i, p) for i, p in enumerate(params)]
        self.group_sizes = [len(g["params"]) for g in param_groups]
        self._reducing = False  # in the step's last backward: a complete bucket starts reducing
        self._new_step()
        self._hooks = [
            p.register_post_accumulate_grad_hook(self._hook(i)) for i, p in enumerate(params)
        ]
        self.mine = [i for i, o in enumerate(self.owner) if o == self.rank]
        self.masters = {i: params[i].detach().float().clone() for i in self.mine}
        self.master_params = [self.masters[i] for i in self.mine]
        master_groups, at = [], 0
        for group in param_groups:
            n = len(group["params"])
            owned = [self.masters[i] for i in range(at, at + n) if i in self.masters]
            master_groups.append({**group, "params": owned})
            at += n
        # where the updated 16-bit weights go: the owner's part of the flat buffer
        self.targets = [self.slots[i] for i in self.mine]
        self._wrap(inner_cls(master_groups, **inner_kwargs), self.targets)
        self._grad_scale = None

    def _slot(self, flat: torch.Tensor, i: int, like: torch.Tensor) -> torch.Tensor:
        return flat[self.offsets[i] : self.offsets[i] + like.numel()].view(like.shape)

    @contextlib.contextmanager
    def reducing(self) -> Iterator[None]:
        """Around the step's last backward: each bucket starts its reduce-scatter once its
        gradients are in, in the buckets' order. A backward outside it only accumulates."""
        self._reducing = True
        try:
            yield
        finally:
            self._reducing = False

    def _hook(self, i: int):
        def accumulate(p: torch.Tensor) -> None:
            slot, b = self._slot(self.flat_grads, i, p), self.bucket_of[i]
            if b < self._launched:
                raise RuntimeError(
                    f"a gradient of weight {i} ({tuple(p.shape)}) after its bucket started "
                    "reducing: a backward after the step's last one (or a weight used in two "
                    "backwards of one micro-batch: reentrant checkpointing)"
                )
            if self._fresh[i]:
                slot.copy_(p.grad)
                self._fresh[i] = False
            else:
                slot.add_(p.grad)
            p.grad = None
            if self._reducing:
                self._waiting[b] -= 1
                self._launch(ready_only=True)

        return accumulate

    def _launch(self, ready_only: bool) -> None:
        """Start the reduce-scatter of each next bucket in order: only the complete ones
        (``ready_only``), or every one left (a weight without a gradient this step: zero)."""
        while self._launched < len(self.buckets):
            bucket = self.buckets[self._launched]
            if ready_only and self._waiting[self._launched] > 0:
                return
            for i in bucket.params:
                if self._fresh[i]:  # no gradient this step (a frozen or unused weight)
                    self._slot(self.flat_grads, i, self.model_params[i]).zero_()
            own = bucket.own(self.flat_grads, self.rank)
            whole = bucket.whole(self.flat_grads, self.world)
            if bucket.owner is None:
                work = dist.reduce_scatter_tensor(own, whole, async_op=True)
            else:
                work = dist.reduce(whole, group_dst=bucket.owner, async_op=True)
            self._works.append(work)
            self._launched += 1

    def _reduce(self) -> None:
        """The step's gradients averaged over the processes into each owner's part (once)."""
        if self._reduced:
            return
        self._launch(ready_only=False)
        for work in self._works:
            work.wait()
        for bucket in self.buckets:
            bucket.own(self.flat_grads, self.rank).div_(self.world)
        self._works, self._reduced = [], True

    def grads(self) -> list[torch.Tensor]:
        self._reduce()
        return [self._slot(self.flat_grads, i, self.model_params[i]) for i in self.mine]

    def clip_(self, max_norm: float) -> torch.Tensor:
        """:meth:`MasterWeightsOptimizer.clip_` of the norm over every process's parameters."""
        grads = self.grads()
        device = self.flat_grads.device
        sq = torch.zeros((), dtype=torch.float32, device=device)
        if grads:
            sq = torch.stack(pytorch.foreach_norms(grads)).square().sum()
        dist.all_reduce(sq)
        norm = sq.sqrt()
        if pytorch.takes_grad_scale(self.inner):
            self._grad_scale = ((norm + 1e-6) / max_norm).clamp(min=1.0)
        else:
            for m, g in zip(self.master_params, grads):
                m.grad = g
            torch.nn.utils.clip_grads_with_norm_(self.master_params, max_norm, norm)
        return norm

    @torch.no_grad()
    def step(self, closure=None):
        grads = self.grads()
        scale, self._grad_scale = self._grad_scale, None
        self.inner.grad_scale = scale
        if hasattr(self.inner, "grads"):  # FusedAdafactor: its gradients by parameter
            self.inner.grads = dict(zip(self.master_params, grads))
        else:
            for m, g in zip(self.master_params, grads):
                m.grad = g
        try:
            loss = self.inner.step(closure)
        finally:
            del self.inner.grad_scale
        if self._copy_back and self.mine:
            pytorch.foreach_copy_(self.targets, self.master_params)
        # each bucket copied into the model's weights as it arrives, while the next ones cross
        works = self._all_gather(self.flat_weights)
        for bucket, work in zip(self.buckets, works):
            work.wait()
            at = list(bucket.params)
            pytorch.foreach_copy_([self.model_params[i] for i in at], [self.slots[i] for i in at])
        self.zero_grad()
        return loss

    def _all_gather(self, flat: torch.Tensor) -> list:
        """Every bucket's parts of ``flat`` from their owners (in place; started, not waited)."""
        works = []
        for b in self.buckets:
            whole = b.whole(flat, self.world)
            if b.owner is None:
                own = b.own(flat, self.rank)
                works.append(dist.all_gather_into_tensor(whole, own, async_op=True))
            else:
                works.append(dist.broadcast(whole, group_src=b.owner, async_op=True))
        return works

    def zero_grad(self, set_to_none: bool = True) -> None:
        for t in (*self.master_params, *self.model_params):
            t.grad = None
        if hasattr(self.inner, "grads"):
            self.inner.grads = {}
        self._new_step()

    def _new_step(self) -> None:
        self._fresh = [True] * len(self.model_params)  # a step's first gradient is copied
        self._waiting = [len(b.params) for b in self.buckets]  # gradients each bucket awaits
        self._launched = 0  # buckets whose reduce-scatter has started this step
        self._works: list = []
        self._reduced = False

    def _gathered(self, tensors: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        """Every parameter's fp32 tensor, this process giving its owned ones (``tensors``), through
        the gradient buffer (free between steps). A collective."""
        for i, t in tensors.items():
            self._slot(self.flat_grads, i, t).copy_(t)
        for work in self._all_gather(self.flat_grads):
            work.wait()
        self._fresh = [True] * len(self._fresh)
        return [self._slot(self.flat_grads, i, p) for i, p in enumerate(self.model_params)]

    @torch.no_grad()
    def write_model(self) -> None:
        """Every master's value into the model's weights (a collective)."""
        pytorch.foreach_copy_(self.model_params, self._gathered(self.masters))

    def state_dict(self) -> dict:
        """The one-GPU optimizer's state_dict on process 0 (the others: {}). A collective."""
        masters = (
            None if self.plain else [t.to("cpu", copy=True) for t in self._gathered(self.masters)]
        )
        local = self.inner.state_dict()
        # this process's inner state by global parameter index: parameter-shaped tensors go
        # through the buffer, the rest (row/column statistics, steps) as objects
        shaped: dict[str, dict[int, torch.Tensor]] = {}
        small: dict[int, dict[str, Any]] = {}
        for j, i in enumerate(self.mine):
            small[i] = {}
            for k, v in local["state"].get(j, {}).items():
                if isinstance(v, torch.Tensor) and v.shape == self.model_params[i].shape:
                    shaped.setdefault(k, {})[i] = v.float()
                else:
                    small[i][k] = v.to("cpu", copy=True) if isinstance(v, torch.Tensor) else v
        where = {k: sorted(held) for k, held in shaped.items()}  # key -> the parameters holding it
        everyone: list = [None] * self.world
        dist.all_gather_object(everyone, (where, small))
        state = {i: s for _, part in everyone for i, s in part.items() if s or i in _held(everyone)}
        for key in sorted({k for held, _ in everyone for k in held}):
            full = self._gathered(shaped.get(key, {}))
            for held, _ in everyone:
                for i in held.get(key, []):
                    state.setdefault(i, {})[key] = full[i].to("cpu", copy=True)
        if self.rank != 0:
            return {}
        inner = {"state": state, "param_groups": self._full_groups()}
        # fp32 weights: one process keeps no masters of them, its state_dict is the inner one's
        return inner if self.plain else {"inner": inner, "master": masters}

    def _full_groups(self) -> list[dict]:
        """The inner optimizer's groups as one process would number every parameter."""
        groups, at = [], 0
        for g, n in zip(self.inner.param_groups, self.group_sizes):
            hyper = {k: v for k, v in g.items() if k != "params"}
            groups.append({**hyper, "params": list(range(at, at + n))})
            at += n
        return groups

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict) -> None:
        """The one-GPU optimizer's state_dict (any process count's)."""
        if self.plain:
            full, inner = [p.detach() for p in self.model_params], state_dict
        else:
            full, inner = state_dict["master"], state_dict["inner"]
        for i in self.mine:
            self.masters[i].copy_(full[i].to(self.masters[i].device))
        local = self.inner.state_dict()
        local["state"] = {
            j: inner["state"][i] for j, i in enumerate(self.mine) if i in inner["state"]
        }
        for g, saved in zip(local["param_groups"], inner["param_groups"]):
            g.update({k: v for k, v in saved.items() if k != "params"})
        self.inner.load_state_dict(local)
        for p, slot, value in zip(self.model_params, self.slots, full, strict=True):
            p.copy_(value.to(p.device))
            slot.copy_(p)


def _held(everyone: list) -> set[int]:
    """The parameters of any process that hold a parameter-shaped state tensor."""
    return {i for held, _ in everyone for ids in held.values() for i in ids}
