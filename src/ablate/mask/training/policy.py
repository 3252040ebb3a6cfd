"""The mask policy's recipe for the training loop (:mod:`ablate.core.training.recipe`): the
next-token recipe with every forward under a policy (packed batches with their per-example
mask), and a packed step's examples as rows, one micro-batch each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ablate.core.training.params import TrainingConfigError
from ablate.core.training.recipe import Recipe
from ablate.mask import masks
from ablate.mask.training import packing
from ablate.mask.training.params import MaskParams


def batch_forward_kwargs(model, batch: dict[str, torch.Tensor], policy: str) -> dict[str, Any]:
    """The forward kwargs of a training batch, packed or not, under ``policy``."""
    if packing.is_packed(batch):
        return packing.packed_forward_kwargs(model, batch, policy)
    return masks.policy_forward_kwargs(
        model, batch["input_ids"], batch["attention_mask"], batch.get("prompt_lengths"), policy
    )


@dataclass(eq=False)
class PolicyRecipe(Recipe):
    """The next-token recipe under a mask ``policy`` (:func:`recipe`); with a ``packer``, a step's
    examples packed into rows, each row one micro-batch (held-out batches stay unpacked: the
    same loss)."""

    policy: str = "causal"
    packer: packing.PackedCollator | None = None

    def forward_kwargs(self, model, batch: dict) -> dict[str, Any]:
        return batch_forward_kwargs(model, batch, policy=self.policy)

    def micro_batches(self, examples: list, size: int) -> list[dict]:
        if self.packer is None:
            return super().micro_batches(examples, size)
        return list(packing.split_rows(self.packer(examples)))


def recipe(policy: str, params: MaskParams, pad_token_id: int) -> PolicyRecipe:
    """The loop's recipe of a run under ``policy``."""
    masks.check_policy(policy)
    if not params.packing:
        return PolicyRecipe(params, policy=policy)
    if params.packing_row_tokens < params.max_seq_len:
        raise TrainingConfigError(
            f"packing_row_tokens={params.packing_row_tokens} is below max_seq_len="
            f"{params.max_seq_len}: an example of max_seq_len tokens would not fit a packed row"
        )
    packer = packing.PackedCollator(pad_token_id, params.packing_row_tokens)
    return PolicyRecipe(params, policy=policy, packer=packer)
