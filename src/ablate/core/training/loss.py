"""The training loss: next-token cross-entropy summed over labelled positions, the forward run
with a study's forward kwargs (its attention rule), the lm_head computed only where a label is
kept (the fast head)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ablate.core.execution import parallel
from ablate.core.training import sharding
from ablate.core.training.params import IGNORE_INDEX, TrainingConfigError


def _fast_head_ok(model) -> bool:
    """Logits only at labelled positions is exact for a plain decoder + linear head (no softcapping)."""
    config = getattr(model, "config", None)
    return (
        hasattr(model, "get_decoder")
        and model.get_decoder() is not None
        and isinstance(model.get_output_embeddings(), torch.nn.Linear)
        and not getattr(config, "final_logit_softcapping", None)
        and getattr(config, "logit_scale", None) in (None, 1.0)
    )


def head_loss_sum(lm_head: torch.nn.Linear, hidden: torch.Tensor, targets: torch.Tensor):
    """Summed CE of ``lm_head(hidden)`` against ``targets`` (the fast head's loss)."""
    return F.cross_entropy(lm_head(hidden).float(), targets, reduction="sum")


def vocab_head_loss(token_ids) -> Any:
    """A head loss whose softmax runs over ``token_ids`` only (``loss_vocab: corpus``: the
    embedded corpus uses a few hundred of 131072 ids); a target outside them is an error, not a
    silent skip. The loss's ``ids``: the sorted ids."""
    ids = torch.tensor(sorted(set(int(t) for t in token_ids)), dtype=torch.long)
    on: dict = {}  # per device: the ids there

    def loss(lm_head: torch.nn.Linear, hidden: torch.Tensor, targets: torch.Tensor):
        here = on.setdefault(hidden.device, ids.to(hidden.device))
        local = torch.searchsorted(here, targets).clamp_(max=len(here) - 1)
        outside = here[local] != targets
        if bool(outside.any()):
            bad = sorted(set(targets[outside].tolist()))[:5]
            raise TrainingConfigError(f"loss_vocab: target token id(s) {bad} are outside it")
        rows = getattr(lm_head, "row_ids", None)  # a head cut to some rows (vocab_rows.RowHead)
        index = here if rows is None else torch.searchsorted(rows, here)
        bias = None if lm_head.bias is None else lm_head.bias[index]
        logits = F.linear(hidden, lm_head.weight[index], bias)
        return F.cross_entropy(logits.float(), local, reduction="sum")

    loss.ids = ids
    return loss


def share_of_mean(local_sum: torch.Tensor, global_count) -> torch.Tensor:
    """This process's share of a mean over every process's units: ``W * local_sum /
    global_count``, as the gradients are averaged over the W processes."""
    return local_sum * parallel.world_size() / global_count


def causal_forward_kwargs(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The default forward-kwargs hook: the model's own causal attention over the padding mask."""
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _fast_head_loss(model, kw: dict, labels, keep, head_loss):
    """(the head loss at labelled positions, their count)."""
    hidden = model.get_decoder()(**kw, use_cache=False).last_hidden_state[:, :-1]
    return head_loss(model.get_output_embeddings(), hidden[keep], labels[keep]), keep.sum()


def loss_sum(
    model,
    batch: dict[str, torch.Tensor],
    forward_kwargs=causal_forward_kwargs,
    *,
    head_loss=head_loss_sum,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of next-token CE over labelled positions, their number). The fast head where the
    model allows it: the lm_head runs only at labelled positions, equal to the model's own loss
    (tests/core/training/test_loss.py)."""
    labels = batch["labels"][:, 1:]
    bare = getattr(model, "module", model)  # the hook reads the model's config; DDP has none
    kw = forward_kwargs(bare, batch)
    keep = labels != IGNORE_INDEX
    if _fast_head_ok(model):
        if sharding.is_sharded(model):  # the root's weights gathered around the decoder + head
            return sharding.gathered(model, _fast_head_loss, kw, labels, keep, head_loss)
        return _fast_head_loss(model, kw, labels, keep, head_loss)
    if head_loss is not head_loss_sum:  # the model's own loss would silently replace it
        raise TrainingConfigError(
            "this head loss (e.g. loss_vocab: corpus) needs the fast head: a bare or sharded "
            "decoder with a linear lm_head, not wrapped (DDP)"
        )
    logits = model(**kw, use_cache=False).logits[:, :-1].flatten(0, 1)
    targets = labels.flatten()
    total = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return total, keep.sum()
