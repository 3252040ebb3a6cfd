"""The data-parallel recipe of a model whose 16-bit weights fit every GPU: the one-GPU recipe
(16-bit weights, fp32 masters stepped by any torch optimizer) with the fp32 masters and the
optimizer's state sharded over the N processes, each owning whole parameters (ZeRO stage 1).

Each process holds the whole 16-bit model and runs the one-GPU forward and backward on its share
of the step's examples; each backward adds every gradient into a flat fp32 buffer on the device
(a post-accumulate hook, which frees the 16-bit gradient, as
:class:`~ablate.core.training.optim.MasterWeightsOptimizer`'s hooks do). Once per step the buffer
is reduce-scattered (one collective: each process receives the summed gradients of the parameters
it owns), the inner optimizer steps the owned masters and writes their 16-bit weights, and one
all-gather gives every process every updated weight. Whole parameters per process: an
optimizer whose statistics span a parameter (Adafactor's factored moments) steps exactly as on
one GPU, compiled, with no collective of its own. The gradient norm of the clip is one all-reduce
of a scalar.

The updated weights and the gradients live in two flat buffers laid out by owner (each process's
parameters in model order, its region padded to the largest), so both collectives run in place on
one tensor; the gathered weights are then copied into the model's (which keep their own storage:
safetensors saves and loads no view of a larger one). Its state_dict (a
collective) is the one-GPU optimizer's: every master and the inner state of every parameter,
gathered on process 0, so a checkpoint resumes on any number of processes, one included.
"""

from __future__ import annotations

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
    """The optimizer of ``p`` (``optim``, its settings, the weight-decay groups) on sharded
    masters of ``model``'s weights, whatever their dtype (fp32 weights: masters equal to them)."""
    cls, kwargs = optimizer_class(p)
    groups = decay_groups(model, p.weight_decay)
    params = [t for g in groups for t in g["params"]]
    return ShardedMastersOptimizer(groups, fused_inner(cls, kwargs, params), kwargs)


def owners(sizes: list[int], world: int) -> list[int]:
    """The process that owns each parameter (of ``sizes`` elements): the largest first, each to
    the process with the fewest elements so far (ties: the lowest rank)."""
    load, owner = [0] * world, [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i], load[r] = r, load[r] + sizes[i]
    return owner


class ShardedMastersOptimizer(MasterWeightsOptimizer):
    """:class:`~ablate.core.training.optim.MasterWeightsOptimizer` over N processes (module
    docstring): ``param_groups`` of the model's parameters (every process the same), the inner
    optimizer built on the masters this process owns. The hooks' gradients are summed over the
    processes and divided by their number: the loop's loss of N processes is the mean loss
    times N, as for FSDP's and DDP's averaged gradients."""

    def __init__(
        self,
        param_groups: list[dict],
        inner_cls,
        inner_kwargs: dict,
        group=None,
    ):
        self.group = group
        self.world, self.rank = dist.get_world_size(group), dist.get_rank(group)
        params = [p for g in param_groups for p in g["params"]]
        if len(params) < self.world:
            raise ValueError(
                f"{len(params)} trained weights cannot be owned by {self.world} processes"
            )
        if len({(p.dtype, p.device) for p in params}) != 1:
            raise ValueError("sharded masters need every trained weight of one dtype and device")
        self.owner = owners([p.numel() for p in params], self.world)
        used = [
            sum(p.numel() for p, o in zip(params, self.owner) if o == r) for r in range(self.world)
        ]
        self.region = max(used)
        self.offsets, at = [0] * len(params), [r * self.region for r in range(self.world)]
        for i, p in enumerate(params):
            self.offsets[i], at[self.owner[i]] = at[self.owner[i]], at[self.owner[i]] + p.numel()
        first = params[0]
        self.flat_weights = torch.zeros(
            self.world * self.region, dtype=first.dtype, device=first.device
        )
        self.flat_grads = torch.zeros(
            self.world * self.region, dtype=torch.float32, device=first.device
        )
        with torch.no_grad():
            for i, p in enumerate(params):
                self._slot(self.flat_weights, i, p).copy_(p)
        self.model_params = params
        self.plain = first.dtype == torch.float32  # masters equal to the weights
        # the weights keep their own storage (safetensors saves and loads no view of a larger
        # one): each all-gather's result is copied into them (one pass over the 16-bit weights)
        self.slots = [self._slot(self.flat_weights, i, p) for i, p in enumerate(params)]
        self.group_sizes = [len(g["params"]) for g in param_groups]
        self._fresh = [True] * len(params)  # the step's first gradient is copied, later ones added
        self._reduced = False
        self._hooks = [
            p.register_post_accumulate_grad_hook(self._hook(i)) for i, p in enumerate(params)
        ]
        self.mine = [i for i, o in enumerate(self.owner) if o == self.rank]
        self.masters = {i: params[i].detach().float().clone() for i in self.mine}
        self.master_params = [self.masters[i] for i in self.mine]
        master_groups, at = [], 0
        for group_ in param_groups:
            n = len(group_["params"])
            owned = [self.masters[i] for i in range(at, at + n) if i in self.masters]
            master_groups.append({**group_, "params": owned})
            at += n
        # where the updated 16-bit weights go: the owner's region of the flat buffer
        self.targets = [self.slots[i] for i in self.mine]
        self._wrap(inner_cls(master_groups, **inner_kwargs), self.targets)
        self._low = False
        self._grads = []
        self._grad_scale = None

    def _slot(self, flat: torch.Tensor, i: int, like: torch.Tensor) -> torch.Tensor:
        return flat[self.offsets[i] : self.offsets[i] + like.numel()].view(like.shape)

    def _own_region(self, flat: torch.Tensor) -> torch.Tensor:
        return flat[self.rank * self.region : (self.rank + 1) * self.region]

    def _hook(self, i: int):
        def accumulate(p: torch.Tensor) -> None:
            slot = self._slot(self.flat_grads, i, p)
            if self._fresh[i]:
                slot.copy_(p.grad)
                self._fresh[i] = False
            else:
                slot.add_(p.grad)
            p.grad = None

        return accumulate

    def _reduce(self) -> None:
        """The step's gradients summed over the processes into each owner's region (once)."""
        if self._reduced:
            return
        for i, fresh in enumerate(self._fresh):
            if fresh:  # no gradient this step (a frozen or unused weight): zero, not stale
                self._slot(self.flat_grads, i, self.model_params[i]).zero_()
        own = self._own_region(self.flat_grads)
        dist.reduce_scatter_tensor(own, self.flat_grads, group=self.group)
        own.div_(self.world)
        self._reduced = True

    def grads(self) -> list[torch.Tensor]:
        self._reduce()
        return [self._slot(self.flat_grads, i, self.model_params[i]) for i in self.mine]

    def clip_(self, max_norm: float) -> torch.Tensor:
        """The gradient norm over every process's parameters (one all-reduce of a scalar), the
        clip as :meth:`MasterWeightsOptimizer.clip_` applies it."""
        grads = self.grads()
        device = self.flat_grads.device
        sq = torch.zeros((), dtype=torch.float32, device=device)
        if grads:
            sq = torch.stack(pytorch.foreach_norms(grads)).square().sum()
        dist.all_reduce(sq, group=self.group)
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
        own = self._own_region(self.flat_weights)
        dist.all_gather_into_tensor(self.flat_weights, own, group=self.group)
        pytorch.foreach_copy_(self.model_params, self.slots)
        self.zero_grad()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for t in (*self.master_params, *self.model_params):
            t.grad = None
        if hasattr(self.inner, "grads"):
            self.inner.grads = {}
        self._fresh = [True] * len(self._fresh)
        self._reduced = False

    def _gathered(self, tensors: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        """Every parameter's fp32 tensor of which this process gives its owned ones
        (``tensors``: index -> tensor shaped like the parameter), through the gradient buffer
        (free between steps: the next step's first gradient overwrites it). A collective."""
        for i, t in tensors.items():
            self._slot(self.flat_grads, i, t).copy_(t)
        dist.all_gather_into_tensor(
            self.flat_grads, self._own_region(self.flat_grads), group=self.group
        )
        self._fresh = [True] * len(self._fresh)
        return [self._slot(self.flat_grads, i, p) for i, p in enumerate(self.model_params)]

    @torch.no_grad()
    def write_model(self) -> None:
        """Every master's value into the model's weights, whatever their dtype now (a
        collective)."""
        pytorch.foreach_copy_(self.model_params, self._gathered(self.masters))

    def state_dict(self) -> dict:
        """The one-GPU optimizer's state_dict (every master, every parameter's inner state, on
        the CPU) on process 0; the others get an empty dict. A collective. Of fp32 weights: the
        inner optimizer's, as one process keeps no masters of them."""
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
        dist.all_gather_object(everyone, (where, small), group=self.group)
        state = {i: s for _, part in everyone for i, s in part.items() if s or i in _held(everyone)}
        for key in sorted({k for held, _ in everyone for k in held}):
            full = self._gathered(shaped.get(key, {}))
            for held, _ in everyone:
                for i in held.get(key, []):
                    state.setdefault(i, {})[key] = full[i].to("cpu", copy=True)
        if self.rank != 0:
            return {}
        inner = {"state": state, "param_groups": self._full_groups()}
        # fp32 weights: one process steps them without masters (its state_dict is the inner
        # optimizer's), and the masters are the weights
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
        """The one-GPU optimizer's state_dict (any process count's: :meth:`state_dict`): this
        process's masters and their inner state, then every weight from the masters (fp32
        weights: the inner optimizer's state_dict, the masters from the weights loaded)."""
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
