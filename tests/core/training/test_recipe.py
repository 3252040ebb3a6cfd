"""ablate.core.training.recipe: what a study gives the loop. A study recipe with a loss of its own
(the bridge's translator): the loop's step applies share_of_mean to its own next-token loss, a
study's recipe to each of its terms, and the loop does not apply it a second time to a study's
loss (the bridge counted 1 per process so that it would not matter); such a recipe brings its
own evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ablate.core.training import loop
from ablate.core.training.loss import share_of_mean
from ablate.core.training.params import TrainingConfigError, resolve_params
from ablate.core.training.recipe import Recipe

P = resolve_params(
    {"batch_size": 2, "grad_accum": 1, "max_steps": 1, "eval_steps": 1, "max_grad_norm": 0},
    "finetune",
)


class _OwnLoss(Recipe):
    """A study's recipe with a loss of its own (``loss(model, batch, step)``), as the bridge's."""

    HELD_OUT_LOSS = False

    def __init__(self, loss):
        super().__init__(P, collator=lambda items: {"items": items})
        self.own = loss

    def step_items(self, batches):
        return None

    def loss(self, model, batch, step, n_items):
        return self.own(model, batch, step)

    def tokens(self, batch):
        return 0

    def optimizer(self, model, *, layout, sharded):
        return torch.optim.SGD(model.parameters(), lr=1.0), None


def _trainer(loss, eval_dataset=None) -> loop.Trainer:
    model = torch.nn.Linear(1, 1, bias=False)
    spec = loop.Spec(Path("unused"), "share", 0, recipe=_OwnLoss(loss))
    return loop.setup(spec, model=model, train_dataset=[1.0, 2.0], eval_dataset=eval_dataset)


def test_a_study_loss_is_its_share_as_it_returns_it():
    """The recipe's loss is the step's loss and its gradient the update, unscaled."""
    seen = []

    def loss(model, batch, step):
        x = torch.tensor(batch["items"]).unsqueeze(-1)
        out = share_of_mean(model(x).sum(), len(batch["items"]))  # the mean over the batch
        seen.append(out.detach())
        return out

    trainer = _trainer(loss)
    trainer.scheduler = type("NoSchedule", (), {"step": lambda self: None})()
    w0 = trainer.model.weight.item()
    loop.step(trainer, loop.step_examples(trainer, 0))
    assert torch.equal(trainer.losses[-1], seen[0])  # one process: its share is the step's loss
    assert len(seen) == 1 and trainer.model.weight.item() == pytest.approx(
        w0 - 1.5
    )  # d(mean of w * x)/dw = 1.5


def test_a_study_loss_brings_its_own_evaluation():
    with pytest.raises(TrainingConfigError, match="own loss needs its own evaluation"):
        _trainer(lambda model, batch, step: model.weight.sum(), eval_dataset=[1.0])
