"""Packed SFT steps: the examples of one optimizer step concatenated into padding-free rows.

Opt-in by ``packing: true``. Each example keeps its own position ids and its own attention ("same
example AND the policy", in the backend's format; for flex_attention one key span per query,
:func:`key_spans`, much cheaper than HF's composed mask function). An example's first token has
no label and every row's loss is divided by the whole step's response tokens, so a step equals
the unpacked one up to summation order. How and why, with measurements: docs/training.md.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import masking_utils

from ablate.core.training.params import IGNORE_INDEX, TrainingConfigError
from ablate.mask import PREFIX_SDPA, masks
from ablate.mask.split_sdpa import BUILT_FOR_KWARG
from ablate.upstream import hf

#: Keys only a packed batch has: the example index of each token in its row (-1 on pads) and
#: the prompt-token flags.
SEQ_IDS = "seq_ids"
PROMPT_MASK = "prompt_mask"
#: Backends whose mask builders take an arbitrary mask function (flash/varlen kernels do not).
_PACKED_BACKENDS = ("eager", "sdpa", PREFIX_SDPA, "flex_attention")


def is_packed(batch: dict[str, Any]) -> bool:
    return SEQ_IDS in batch


def _pack_rows(lengths: list[int], row_tokens: int) -> list[list[int]]:
    """Indices of the examples per row: in order (reproducible from the sampler's order), a new
    row when the next one would not fit."""
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
    """A step's examples as packed rows, right-padded to a multiple of ``pad_to_multiple_of``
    (flex_attention's block size). Pads form their own "example" (seq id -1): a fully masked
    query would give NaN gradients."""

    def __init__(self, pad_token_id: int, row_tokens: int, pad_to_multiple_of: int = 128):
        self.pad_token_id = pad_token_id
        self.row_tokens = row_tokens
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(ex["input_ids"]) for ex in batch]
        rows = _pack_rows(lengths, self.row_tokens)
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


def split_rows(batch: dict[str, torch.Tensor]):
    """The packed batch one row at a time (each a packed batch itself)."""
    for r in range(batch["input_ids"].shape[0]):
        yield {k: v[r : r + 1] for k, v in batch.items()}


def _same_example(seq_ids: torch.Tensor):
    def inner(batch_idx, head_idx, q_idx, kv_idx):
        return seq_ids[batch_idx, q_idx] == seq_ids[batch_idx, kv_idx]

    return inner


def _run_bounds(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last index of the run of equal values of ``x`` around each position."""
    idx = torch.arange(x.shape[-1], device=x.device).expand_as(x)
    starts = torch.ones_like(x, dtype=torch.bool)
    starts[:, 1:] = x[:, 1:] != x[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, idx, 0).cummax(-1).values
    last = torch.where(ends, idx, x.shape[-1]).flip(-1).cummin(-1).values.flip(-1)
    return first, last


def key_spans(
    batch: dict[str, torch.Tensor], policy: str, window: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``lo, hi`` (rows, width): under ``policy`` a query ``q`` of a packed batch sees exactly the
    keys ``lo[q] <= kv <= hi[q]`` of its row; ``window``: a sliding-window layer's, with HF's
    bounds (causal ``q - kv < window``; prefill_bidir's block ``|q - kv| <= window``; the prompt
    block of prefix_bidir ``|q - kv| < window``, as :func:`ablate.mask.masks.windowed_prompt_block`).
    Pads (example id -1) are one run per row and, as under HF's block overlay, causal."""
    seq_ids = batch[SEQ_IDS]
    lo, last = _run_bounds(seq_ids)
    q = torch.arange(seq_ids.shape[-1], device=seq_ids.device).expand_as(seq_ids)
    # the window below each query: one key more for prefill_bidir's inclusive bound
    reach = None if window is None else torch.full_like(q, window - 1)
    if policy == "causal":
        hi = q
    elif policy == "prefill_bidir":
        real = seq_ids >= 0
        hi = torch.where(real, last, q)
        reach = None if window is None else torch.where(real, window, window - 1)
    else:  # prefix_bidir: a prompt token also sees the rest of its prompt
        prompt = batch[PROMPT_MASK]
        # non-prompt positions get values of their own, so a prompt's run ends with it
        _, prompt_last = _run_bounds(torch.where(prompt, seq_ids, -2 - q))
        hi = torch.where(prompt, prompt_last, q)
    if reach is not None:
        lo = torch.maximum(lo, q - reach)
        hi = torch.minimum(hi, q + reach)
    return lo, hi


def _span_block_mask(batch: dict[str, torch.Tensor], policy: str, window: int | None):
    """flex_attention's ``BlockMask`` of :func:`key_spans` (no dense mask)."""
    from torch.nn.attention import flex_attention

    lo, hi = key_spans(batch, policy, window)

    def mask_mod(batch_idx, head_idx, q_idx, kv_idx):
        return (kv_idx >= lo[batch_idx, q_idx]) & (kv_idx <= hi[batch_idx, q_idx])

    rows, width = lo.shape
    return flex_attention.create_block_mask(
        mask_mod, rows, None, width, width, device=lo.device, _compile=True
    )


def packed_mask(model_or_config: Any, batch: dict[str, torch.Tensor], policy: str, dtype):
    """The attention mask of a packed batch under ``policy``, in the backend's format."""
    masks.check_policy(policy)
    config = masks.text_config(model_or_config)
    impl = hf.attn_implementation(config)
    if impl not in _PACKED_BACKENDS:
        raise TrainingConfigError(
            f"packing: true needs attn_implementation in {', '.join(_PACKED_BACKENDS)} "
            f"(an explicit per-example mask); the model runs {impl!r}"
        )
    if impl == "flex_attention":
        return masks.by_layer_type(
            config,
            lambda sliding: _span_block_mask(
                batch, policy, config.sliding_window if sliding else None
            ),
        )
    return composed_mask(config, batch, policy, dtype)


def composed_mask(model_or_config: Any, batch: dict[str, torch.Tensor], policy: str, dtype):
    """:func:`packed_mask` through transformers' mask builders, whatever the backend."""
    config = masks.text_config(model_or_config)
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

    def build(sliding: bool):
        if sliding:
            overlay, w = None, config.sliding_window
            if policy == "prefill_bidir":  # as unpacked: HF's inclusive window, |q - kv| <= w
                block = masking_utils.blockwise_overlay(block_ids)
                window = masking_utils.sliding_window_bidirectional_overlay(w)
                overlay = masking_utils.and_masks(block, window)
            elif block_ids is not None:  # prefix_bidir: as masks.prefix_lm_mask, |q - kv| < w
                overlay = masks.windowed_prompt_block(block_ids, w)
            return masking_utils.create_sliding_window_causal_mask(
                **common, or_mask_function=overlay
            )
        overlay = None if block_ids is None else masking_utils.blockwise_overlay(block_ids)
        return masking_utils.create_causal_mask(**common, or_mask_function=overlay)

    return masks.by_layer_type(config, build)


def packed_forward_kwargs(model: Any, batch: dict[str, torch.Tensor], policy: str) -> dict:
    """kwargs for ``model(**kw)`` (or its decoder) that run a packed batch under ``policy``."""
    mask = packed_mask(model, batch, policy, getattr(model, "dtype", torch.float32))
    return masked_forward_kwargs(model, batch, mask)


def masked_forward_kwargs(model: Any, batch: dict[str, torch.Tensor], mask) -> dict:
    """kwargs for ``model(**kw)`` that run a packed batch under ``mask`` (the backend's)."""
    # the mask is in this backend's format: refuse it under another (as masks does)
    masks.install_backend_check(model)
    return {
        "input_ids": batch["input_ids"],
        "attention_mask": mask,
        "position_ids": batch["position_ids"],
        BUILT_FOR_KWARG: hf.attn_implementation(masks.text_config(model)),
    }
