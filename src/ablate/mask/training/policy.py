"""The mask policy's hook into the core Trainer (:mod:`ablate.core.training.trainer`): every forward
under a policy (packed batches with their per-example mask), packed steps one row at a time, and
the Trainer builder that picks the packing collator."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import torch

from ablate.core.training import trainer as core_trainer
from ablate.core.training.params import IGNORE_INDEX, TrainingConfigError
from ablate.core.training.trainer import CoreTrainer, head_loss_sum, loss_sum
from ablate.mask import masks
from ablate.mask.training import packing


def batch_forward_kwargs(model, batch: dict[str, torch.Tensor], policy: str) -> dict[str, Any]:
    """The forward kwargs of a training batch under ``policy`` (a packed batch, see
    :mod:`ablate.mask.training.packing`, with its per-example mask)."""
    if packing.is_packed(batch):
        return packing.packed_forward_kwargs(model, batch, policy)
    return masks.policy_forward_kwargs(
        model, batch["input_ids"], batch["attention_mask"], batch.get("prompt_lengths"), policy
    )


def policy_loss_sum(
    model,
    batch: dict[str, torch.Tensor],
    policy: str,
    *,
    fast_head: bool = True,
    head_loss=head_loss_sum,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`ablate.core.training.trainer.loss_sum` under ``policy``."""
    forward = functools.partial(batch_forward_kwargs, policy=policy)
    return loss_sum(model, batch, forward, fast_head=fast_head, head_loss=head_loss)


class MaskPolicyTrainer(CoreTrainer):
    """The core Trainer whose forward obeys a mask policy; a packed step runs row by row."""

    def __init__(self, *args, policy: str, **kwargs):
        self.policy = masks.check_policy(policy)
        forward = functools.partial(batch_forward_kwargs, policy=policy)
        super().__init__(*args, forward_kwargs=forward, **kwargs)

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not packing.is_packed(inputs) or inputs["input_ids"].shape[0] == 1:
            return super().training_step(model, inputs, num_items_in_batch)
        # A packed step of several rows: one forward/backward per row (the memory of one row),
        # each normalised by the response tokens of the whole step, like grad accumulation.
        if num_items_in_batch is None:
            num_items_in_batch = (inputs["labels"][:, 1:] != IGNORE_INDEX).sum()
        return sum(
            super(MaskPolicyTrainer, self).training_step(model, row, num_items_in_batch)
            for row in packing.split_rows(inputs)
        )


def build_trainer(spec: core_trainer.TrainerSpec, *, policy: str, **data):
    """:func:`ablate.core.training.trainer.build_trainer` with a :class:`MaskPolicyTrainer` under
    ``policy``; ``packing: true`` packs a step's examples into rows (its batch: the whole step).
    ``data``: build_trainer's model, tokenizer, datasets and callbacks."""
    p = spec.params
    hooks: dict[str, Any] = {}
    if p["packing"]:
        if p["packing_row_tokens"] < p["max_seq_len"]:
            raise TrainingConfigError(
                f"packing_row_tokens={p['packing_row_tokens']} is below max_seq_len="
                f"{p['max_seq_len']}: an example of max_seq_len tokens would not fit a packed row"
            )
        pad_token_id = spec.pad_token_id
        if pad_token_id is None:
            pad_token_id = data["tokenizer"].pad_token_id
        # the Trainer loads a whole step's examples at once; the collator packs them
        hooks["step"] = (p["batch_size"] * p["grad_accum"], 1)
        hooks["collator"] = packing.PackedCollator(pad_token_id, p["packing_row_tokens"])
    spec = dataclasses.replace(
        spec,
        trainer_cls=MaskPolicyTrainer,
        trainer_kwargs={**spec.trainer_kwargs, "policy": policy},
        **hooks,
    )
    return core_trainer.build_trainer(spec, **data)
