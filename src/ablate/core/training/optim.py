"""The optimizer of a run: its class and settings from the params (``optim``), the weight-decay
groups, the fp32 master weights of 16-bit weights (:class:`MasterWeightsOptimizer`), the learning
rate schedule."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from transformers import get_scheduler
from transformers.optimization import Adafactor

from ablate.core.training.adafactor import FusedAdafactor
from ablate.core.training.params import TrainParams
from ablate.upstream import pytorch


def optimizer_class(p: TrainParams) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The class and settings of ``optim`` (HF's names and defaults)."""
    lr, name = p.learning_rate, p.optim
    if name == "adafactor":
        return Adafactor, {"lr": lr, "scale_parameter": False, "relative_step": False}
    if name in ("adamw_torch", "adamw_torch_fused"):
        kwargs = {"lr": lr, "betas": (0.9, 0.999), "eps": 1e-8}
        return torch.optim.AdamW, {**kwargs, "fused": True} if name.endswith("fused") else kwargs
    if name == "sgd":
        return torch.optim.SGD, {"lr": lr}
    raise ValueError(
        f"optim: {name!r} is not one of adafactor, adamw_torch, adamw_torch_fused, sgd"
    )


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The trained parameters in two groups: matrices decay, vectors (norms, biases) do not
    (nanoGPT's rule; HF's by-name rule picks the same parameters in these models)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: torch.nn.Module, p: TrainParams, *, master_weights: bool, sharded: bool
) -> torch.optim.Optimizer:
    """The run's optimizer: on fp32 masters of 16-bit weights (``master_weights``), else on the
    weights (a sharded model's Adafactor: :class:`FusedAdafactor`, whose statistics span shards)."""
    cls, kwargs = optimizer_class(p)
    groups = decay_groups(model, p.weight_decay)
    if sharded:
        if cls is Adafactor and FusedAdafactor.supports(kwargs):
            cls = FusedAdafactor
        return cls(groups, **kwargs)
    if master_weights:
        params = [t for g in groups for t in g["params"]]
        return MasterWeightsOptimizer(groups, fused_inner(cls, kwargs, params), kwargs)
    return cls(groups, **kwargs)


def build_scheduler(optimizer: torch.optim.Optimizer, p: TrainParams):
    """``lr_scheduler`` over ``max_steps``, with ``ceil(warmup_ratio x max_steps)`` warm-up steps."""
    warmup = -(-p.warmup_ratio * p.max_steps // 1)
    return get_scheduler(
        p.lr_scheduler,
        optimizer,
        num_warmup_steps=int(warmup),
        num_training_steps=p.max_steps,
    )


class MasterWeightsOptimizer(torch.optim.Optimizer):
    """Any torch optimizer run on fp32 master copies of 16-bit model weights.

    bf16 weights make the forward and backward faster (docs/benchmarks.md), but a bf16 weight
    cannot take a 2e-5 x O(1) update (its spacing near 0.02 is ~1e-4): it rounds away. So each
    gradient is accumulated in fp32 by a post-accumulate hook (which frees the 16-bit one), the
    inner optimizer steps the masters and the weights are copied back: the 16-bit weights are
    only a cache. Its state_dict carries the masters, so a resumed run continues bit for bit.
    """

    def __init__(self, param_groups: list[dict], inner_cls, inner_kwargs: dict):
        self.model_params: list[torch.nn.Parameter] = []
        self.master_params: list[torch.Tensor] = []
        self._hooks = []
        self._grad_scale: torch.Tensor | None = None  # a clip factor for the fused step (clip_)
        # an inner optimizer that takes 16-bit gradients gets a single micro-batch's uncast, as a
        # ``grads`` entry (a tensor's .grad must have its dtype): no fp32 copy is written
        self._low = getattr(inner_cls, "takes_low_precision_grads", False)
        self._grads: list[torch.Tensor | None] = []
        master_groups = []
        for group in param_groups:
            masters = []
            for p in group["params"]:
                m = p.detach().float().clone()
                self._hooks.append(
                    p.register_post_accumulate_grad_hook(self._hook(len(self._grads)))
                )
                self.model_params.append(p)
                self.master_params.append(m)
                self._grads.append(None)
                masters.append(m)
            master_groups.append({**group, "params": masters})
        # the hooks hold the optimizer weakly and go with it: a dropped run frees its masters and
        # state (a benchmark builds several in one process), and another optimizer can take over
        weakref.finalize(self, _remove_hooks, self._hooks)
        self._wrap(inner_cls(master_groups, **inner_kwargs), self.model_params)

    def _wrap(self, inner: torch.optim.Optimizer, targets: list[torch.Tensor]) -> None:
        """``inner`` steps the masters and writes their 16-bit values into ``targets`` where it
        can (else :meth:`step` copies them back)."""
        self.inner = inner
        mirrors = getattr(inner, "mirrors", None)  # an inner that writes the 16-bit weights
        if mirrors is not None:
            mirrors.update(zip(self.master_params, targets))
        self._copy_back = mirrors is None
        # the attributes torch's Optimizer API (LR schedulers, accelerate) reads
        self.defaults = inner.defaults
        pytorch.init_optimizer_hooks(self)

    def _hook(self, i: int):
        ref = weakref.ref(self)

        def accumulate(p: torch.Tensor) -> None:
            self = ref()
            if self is None:  # the optimizer is gone (its finalizer removes this hook)
                return
            master = self.master_params[i]
            if not self._low:
                g = p.grad.to(torch.float32)
                if master.grad is None:
                    master.grad = g
                else:
                    master.grad.add_(g)
            elif self._grads[i] is None:
                self._grads[i] = p.grad  # kept as it is: cast where the optimizer reads it
            elif self._grads[i].dtype != torch.float32:  # a second micro-batch: sum in fp32
                self._grads[i] = self._grads[i].float().add_(p.grad)
            else:
                self._grads[i].add_(p.grad)
            p.grad = None

        return accumulate

    def grads(self) -> list[torch.Tensor | None]:
        """Each master's gradient: its ``.grad`` or the hooks' accumulated one."""
        return [
            m.grad if m.grad is not None else g for m, g in zip(self.master_params, self._grads)
        ]

    def clip_(self, max_norm: float) -> torch.Tensor:
        """Clip the masters' gradients to ``max_norm``; returns the norm before clipping. A fused
        inner optimizer takes the clip factor as its AMP ``grad_scale`` and divides in its own
        kernel, saving a pass over the gradients (bench/results/mfu_h100.md)."""
        grads = [g for g in self.grads() if g is not None]
        # get_total_norm's computation, in fp32 whatever the gradients' dtype
        norms = pytorch.foreach_norms(grads, dtype=torch.float32) if grads else []
        norm = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
        if pytorch.takes_grad_scale(self.inner):
            # clip_grads_with_norm_'s factor max_norm / (norm + 1e-6), capped at 1, as a divisor
            self._grad_scale = ((norm + 1e-6) / max_norm).clamp(min=1.0)
        else:  # it takes the tensors whose .grad it scales (given the grads, it did nothing)
            with_grad = [m for m in self.master_params if m.grad is not None]
            torch.nn.utils.clip_grads_with_norm_(with_grad, max_norm, norm)
        return norm

    @property
    def param_groups(self):
        return self.inner.param_groups

    @property
    def state(self):
        return self.inner.state

    @torch.no_grad()
    def step(self, closure=None):
        scale, self._grad_scale = self._grad_scale, None
        self.inner.grad_scale = scale  # None: no clip pending (torch's optimizers read None)
        if self._low:
            self.inner.grads = {
                m: g for m, g in zip(self.master_params, self._grads) if g is not None
            }
        try:
            loss = self.inner.step(closure)
        finally:
            del self.inner.grad_scale
        if self._copy_back:
            pytorch.foreach_copy_(self.model_params, self.master_params)
        self.zero_grad()  # model.zero_grad() cannot see the masters'
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for t in (*self.master_params, *self.model_params):
            t.grad = None
        self._grads = [None] * len(self._grads)
        if self._low:
            self.inner.grads = {}

    @torch.no_grad()
    def write_model(self) -> None:
        """The masters' values into the model's weights (in the weights' dtype)."""
        pytorch.foreach_copy_(self.model_params, self.master_params)

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict(), "master": list(self.master_params)}

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict) -> None:
        self.inner.load_state_dict(state_dict["inner"])
        pytorch.foreach_copy_(
            self.master_params,
            [t.to(m.device) for t, m in zip(state_dict["master"], self.master_params, strict=True)],
        )
        pytorch.foreach_copy_(self.model_params, self.master_params)


def _remove_hooks(handles: list) -> None:
    for h in handles:
        h.remove()


def fused_inner(cls, kwargs: dict, params: list[torch.Tensor]):
    """The masters' optimizer class: HF's Adafactor becomes :class:`FusedAdafactor` on CUDA; on
    CPU HF's own loop stays (compiling costs seconds there and saves little)."""
    if cls is Adafactor and FusedAdafactor.supports(kwargs) and all(p.is_cuda for p in params):
        return FusedAdafactor
    return cls
