"""What a study gives the training core: one :class:`Recipe`, whose methods the loop
(:mod:`.loop`) and the run driver (:mod:`.driver`) call with no branch on the study.
:class:`Recipe` itself is the next-token recipe; a study refines it by subclassing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from ablate.core.execution import parallel
from ablate.core.training import sharded_masters
from ablate.core.training.loss import causal_forward_kwargs, head_loss_sum, loss_sum, share_of_mean
from ablate.core.training.memory import SHARDED_MASTERS, data_parallel_recipe
from ablate.core.training.optim import build_optimizer, build_scheduler
from ablate.core.training.params import (
    IGNORE_INDEX,
    LoopParams,
    TrainParams,
    bf16_enabled,
    master_weights_enabled,
)


class Evaluation(Protocol):
    """A study's own evaluation instead of the held-out loss (e.g. a generative accuracy), every
    ``eval_steps``, at step 0 of a fresh start and of the final weights."""

    def __call__(self, step: int) -> dict[str, Any] | None:
        """Evaluate at ``step``; its stop (``{"reason", "step", "detail"}``: training ends there)
        or None."""

    def last_step(self) -> int | None:
        """The step it evaluated last (None: none)."""

    def state(self) -> tuple[dict[str, Any], Any]:
        """(plain values, tensors) that each checkpoint carries."""

    def load(self, values: dict[str, Any], tensors: Any) -> None:
        """Take back what :meth:`state` gave."""

    def unfit(self, tensors: Any) -> str | None:
        """Why a checkpoint's tensors cannot be this run's (None: they fit)."""


def count(batch: dict) -> int:
    """The labelled tokens ``batch``'s loss sums over, counted on the host."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


@dataclass(eq=False)
class Recipe:
    """The next-token recipe of ``params``. ``collator`` None: :class:`~.data.PolicyCollator` of
    the run's padding id; ``evaluation`` None: the held-out loss."""

    params: TrainParams
    head_loss: Callable[..., Any] = head_loss_sum
    collator: Callable[[list], dict] | None = None
    evaluation: Evaluation | None = None
    #: whether held-out examples are scored by this recipe's next-token loss (a study with a loss
    #: of its own brings its own :attr:`evaluation`)
    HELD_OUT_LOSS: ClassVar[bool] = True

    @property
    def loop_params(self) -> LoopParams:
        return self.params  # a TrainParams holds the loop's

    def bf16(self) -> bool:
        """Whether the forwards run under bf16 autocast (whole weights) or in bf16 shards."""
        return bf16_enabled(self.params.bf16)

    def data_parallel(self, model, world: int, memory_bytes: int) -> tuple[str, str]:
        """(the layout of ``world`` > 1 processes, why): :func:`~.memory.data_parallel_recipe`."""
        return data_parallel_recipe(
            self.params.data_parallel,
            n_params=sum(t.numel() for t in model.parameters()),
            world=world,
            compute_bytes=2 if self.bf16() else 4,
            optim=self.params.optim,
            memory_bytes=memory_bytes,
        )

    def forward_kwargs(self, model, batch: dict) -> dict:
        return causal_forward_kwargs(model, batch)

    def micro_batches(self, examples: list, size: int) -> list[dict]:
        return [self.collator(examples[i : i + size]) for i in range(0, len(examples), size)]

    def order(self, step: int, n: int) -> list[int]:
        """The indices of optimizer step ``step``'s examples, all processes': epochs of seeded
        permutations cut into steps, so a resumed run trains on the same."""
        p = self.loop_params
        per_step = p.batch_size * p.grad_accum
        orders: dict[int, list[int]] = {}
        out = []
        for pos in range(step * per_step, (step + 1) * per_step):
            epoch, i = divmod(pos, n)
            if epoch not in orders:
                g = torch.Generator().manual_seed(p.seed * 1_000_003 + epoch)
                orders[epoch] = torch.randperm(n, generator=g).tolist()
            out.append(orders[epoch][i])
        return out

    def step_items(self, batches: list[dict]) -> int | None:
        """The labelled tokens of the whole step, all processes', counted on the host."""
        return max(parallel.sum_int(sum(count(b) for b in batches)), 1)

    def batch_loss(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed next-token CE, labelled tokens)."""
        return loss_sum(model, batch, self.forward_kwargs, head_loss=self.head_loss)

    def loss(self, model, batch: dict, step: int, n_items: int | None) -> torch.Tensor:
        """``batch``'s part of this process's share of step ``step``'s mean loss."""
        return share_of_mean(self.batch_loss(model, batch)[0], n_items)

    def tokens(self, batch: dict):
        """``batch``'s tokens, read after its forward: non-pad ones (on the device: no sync)."""
        return batch["attention_mask"].sum()

    def log_parts(self) -> dict[str, float]:
        """More entries of a logging step (they win over the loop's)."""
        return {}

    def optimizer(self, model, *, layout: str | None, sharded: bool):
        """(optimizer, schedule) of ``model``; ``layout``: a data-parallel recipe or None."""
        p = self.params
        if layout == SHARDED_MASTERS:
            optimizer = sharded_masters.build(model, p)
        else:
            masters = master_weights_enabled(p) and not sharded
            optimizer = build_optimizer(model, p, master_weights=masters, sharded=sharded)
        return optimizer, build_scheduler(optimizer, p)
