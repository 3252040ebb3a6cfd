"""Packed SFT steps: the examples of one optimizer step concatenated into padding-free rows.

Opt-in by ``packing: true`` (finetune params). The Trainer then loads all ``batch_size x
grad_accum`` examples of a step at once (the same examples, in the same order, as the unpacked
step: the sampler's permutation does not depend on the batch size) and :class:`PackedCollator`
lays them end to end into rows of at most ``packing_row_tokens`` tokens. Each example keeps its
own position ids (0, 1, ...) and its own attention: :func:`packed_forward_kwargs` builds the mask
"same example AND the policy", through transformers' ``masking_utils`` builders, so it comes in
the backend's format (additive float for eager, bool for sdpa, a sparse ``BlockMask`` for
flex_attention, which skips the blocks between examples). The policies keep their one definition
in :mod:`ablate.mask.masks`; per example they read:

- ``causal``: causal;
- ``prefill_bidir``: every token of the example attends to every token of the example;
- ``prefix_bidir``: prompt tokens of the example attend to each other, the rest causally.

The first token of every example has label -100, so no example is trained to predict the next
one's first token; the loss of every row is divided by the response tokens of the whole step (the
Trainer's ``num_items_in_batch``), so a step equals the unpacked one up to float summation order
(tests/mask/test_packing.py, every policy, loss and gradients, grad accumulation included).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import masking_utils

from ablate.core.training.params import IGNORE_INDEX, TrainingConfigError
from ablate.mask import PREFIX_SDPA, masks
from ablate.mask.split_sdpa import BUILT_FOR_KWARG

#: Keys only a packed batch has: the example index of each token in its row (-1 on pads) and
#: the prompt-token flags.
SEQ_IDS = "seq_ids"
PROMPT_MASK = "prompt_mask"
#: Backends whose mask builders take an arbitrary mask function (flash/varlen kernels do not).
PACKED_BACKENDS = ("eager", "sdpa", PREFIX_SDPA, "flex_attention")


def is_packed(batch: dict[str, Any]) -> bool:
    return SEQ_IDS in batch


def pack_rows(lengths: list[int], row_tokens: int) -> list[list[int]]:
    """Indices of the examples per row: in order, a new row when the next one would not fit.

    Order-preserving (not first-fit-decreasing) so the rows of a step are reproducible from the
    sampler's order; with rows of several thousand tokens the last row's slack is the only waste.
    """
    rows: list[list[int]] = [[]]
    used = 0
    for i, n in enumerate(lengths):
        if n > row_tokens:
            raise TrainingConfigError(
                f"an example of {n} tokens does not fit a packed row of packing_row_tokens="
                f"{row_tokens}; set packing_row_tokens >= max_seq_len"
            )
        if used + n > row_tokens:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += n
    return rows


class PackedCollator:
    """A step's examples as packed rows (see the module docstring); rows are right-padded to a
    common width, a multiple of ``pad_to_multiple_of`` (flex_attention's block size). Pads form
    their own "example" (seq id -1) so every query has a key to attend to (a fully masked query
    would give NaN gradients)."""

    def __init__(self, pad_token_id: int, row_tokens: int, pad_to_multiple_of: int = 128):
        self.pad_token_id = pad_token_id
        self.row_tokens = row_tokens
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(ex["input_ids"]) for ex in batch]
        rows = pack_rows(lengths, self.row_tokens)
        width = max(sum(lengths[i] for i in row) for row in rows)
        width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        n = len(rows)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)  # real tokens, for token counts
        position_ids = torch.arange(width).repeat(n, 1)  # pads: overwritten below
        seq_ids = torch.full((n, width), -1, dtype=torch.long)
        prompt_mask = torch.zeros((n, width), dtype=torch.bool)
        for r, row in enumerate(rows):
            start = 0
            for j, i in enumerate(row):
                ids = torch.as_tensor(batch[i]["input_ids"], dtype=torch.long)
                k, pl = len(ids), int(batch[i]["prompt_length"])
                end = start + k
                input_ids[r, start:end] = ids
                # position 0 of an example is never a target (as in the unpacked rows, where the
                # shift drops it): it must not be predicted from the previous example
                first = start + max(pl, 1)
                labels[r, first:end] = ids[max(pl, 1) :]
                attention_mask[r, start:end] = 1
                position_ids[r, start:end] = torch.arange(k)
                seq_ids[r, start:end] = j
                prompt_mask[r, start : start + pl] = True
                start = end
            position_ids[r, start:] = torch.arange(width - start)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "position_ids": position_ids,
            SEQ_IDS: seq_ids,
            PROMPT_MASK: prompt_mask,
        }


def split_rows(batch: dict[str, torch.Tensor], rows_per_forward: int = 1):
    """The packed batch in forwards of ``rows_per_forward`` rows (each a packed batch itself)."""
    n = batch["input_ids"].shape[0]
    for r in range(0, n, rows_per_forward):
        yield {k: v[r : r + rows_per_forward] for k, v in batch.items()}


def _same_example(seq_ids: torch.Tensor):
    def inner(batch_idx, head_idx, q_idx, kv_idx):
        return seq_ids[batch_idx, q_idx] == seq_ids[batch_idx, kv_idx]

    return inner


def packed_mask(model_or_config: Any, batch: dict[str, torch.Tensor], policy: str, dtype):
    """The attention mask of a packed batch under ``policy``, in the backend's format (a dict by
    layer type for configs that alternate full and sliding-window layers)."""
    masks.check_policy(policy)
    config = masks._text_config(model_or_config)
    impl = getattr(config, "_attn_implementation", None)
    if impl not in PACKED_BACKENDS:
        raise TrainingConfigError(
            f"packing: true needs attn_implementation in {', '.join(PACKED_BACKENDS)} "
            f"(an explicit per-example mask); the model runs {impl!r}"
        )
    seq_ids = batch[SEQ_IDS]
    # bidirectional blocks: a whole example (prefill_bidir) or its prompt (prefix_bidir)
    block_ids = None
    if policy == "prefill_bidir":
        block_ids = seq_ids
    elif policy == "prefix_bidir":
        block_ids = torch.where(batch[PROMPT_MASK], seq_ids, -1)
    dummy = torch.empty(*seq_ids.shape, 0, dtype=dtype, device=seq_ids.device)
    common = dict(
        config=config,
        inputs_embeds=dummy,
        # None, not the real-token mask: pads must attend (to each other); the examples are kept
        # apart by the and-mask. No position_ids either: from them HF would detect the packing
        # itself and then call the mask functions with positions in place of row indices
        attention_mask=None,
        past_key_values=None,
        position_ids=None,
        and_mask_function=_same_example(seq_ids),
    )

    def build(layer_type: str | None):
        if masks._is_sliding(config, layer_type):
            overlay, w = None, config.sliding_window
            if policy == "prefill_bidir":  # as unpacked: HF's inclusive window, |q - kv| <= w
                block = masking_utils.blockwise_overlay(block_ids)
                window = masking_utils.sliding_window_bidirectional_overlay(w)
                overlay = masking_utils.and_masks(block, window)
            elif block_ids is not None:  # prefix_bidir: as masks.prefix_lm_mask, |q - kv| < w
                overlay = masks._windowed_prompt_block(block_ids, w)
            return masking_utils.create_sliding_window_causal_mask(
                **common, or_mask_function=overlay
            )
        overlay = None if block_ids is None else masking_utils.blockwise_overlay(block_ids)
        return masking_utils.create_causal_mask(**common, or_mask_function=overlay)

    layer_types = sorted(set(getattr(config, "layer_types", None) or []))
    if len(layer_types) > 1:
        return {lt: build(lt) for lt in layer_types}
    return build(layer_types[0] if layer_types else None)


def packed_forward_kwargs(model: Any, batch: dict[str, torch.Tensor], policy: str) -> dict:
    """kwargs for ``model(**kw)`` (or its decoder) that run a packed batch under ``policy``."""
    mask = packed_mask(model, batch, policy, getattr(model, "dtype", torch.float32))
    kw: dict[str, Any] = dict(
        input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"]
    )
    impl = getattr(masks._text_config(model), "_attn_implementation", None)
    # the mask is in this backend's format: refuse it under another (as masks does)
    masks._install_backend_check(model)
    kw[BUILT_FOR_KWARG] = impl
    return kw
