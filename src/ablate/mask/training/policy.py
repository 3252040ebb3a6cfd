"""The mask policy's hooks into the training loop (:mod:`ablate.core.training.loop`): every
forward under a policy (packed batches with their per-example mask), and a packed step's
examples as rows, one micro-batch each."""

from __future__ import annotations

import functools
from typing import Any

import torch

from ablate.core.training.data import PolicyCollator
from ablate.core.training.loop import Data, Hooks, NextToken
from ablate.core.training.params import TrainingConfigError
from ablate.mask import masks
from ablate.mask.training import packing
from ablate.mask.training.gate import MaskParams


def batch_forward_kwargs(model, batch: dict[str, torch.Tensor], policy: str) -> dict[str, Any]:
    """The forward kwargs of a training batch under ``policy`` (a packed batch, see
    :mod:`ablate.mask.training.packing`, with its per-example mask)."""
    if packing.is_packed(batch):
        return packing.packed_forward_kwargs(model, batch, policy)
    return masks.policy_forward_kwargs(
        model, batch["input_ids"], batch["attention_mask"], batch.get("prompt_lengths"), policy
    )


def packed_rows(collator: packing.PackedCollator, examples: list, size: int) -> list[dict]:
    """A step's examples packed into rows, each row one micro-batch (the memory of one row); the
    loop divides every row's loss by the labelled tokens of the whole step, as for unpacked
    micro-batches, so the step equals the unpacked one up to summation order."""
    return list(packing.split_rows(collator(examples)))


def hooks(policy: str, params: MaskParams, pad_token_id: int) -> Hooks:
    """The loop's hooks of a run under ``policy``; ``packing: true`` packs a step's examples into
    rows (held-out batches stay unpacked: the same loss)."""
    masks.check_policy(policy)
    compute = NextToken(forward_kwargs=functools.partial(batch_forward_kwargs, policy=policy))
    if not params.packing:
        return Hooks(compute=compute)
    if params.packing_row_tokens < params.max_seq_len:
        raise TrainingConfigError(
            f"packing_row_tokens={params.packing_row_tokens} is below max_seq_len="
            f"{params.max_seq_len}: an example of max_seq_len tokens would not fit a packed row"
        )
    collator = packing.PackedCollator(pad_token_id, params.packing_row_tokens)
    data = Data(
        collate=PolicyCollator(pad_token_id), micro_batches=functools.partial(packed_rows, collator)
    )
    return Hooks(compute=compute, data=data)
