"""Test oracles: independent computations that a test compares the package's result against
(a test module imports them from here, as from helpers.py). Oracles the benchmarks use too live
in bench/references.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ablate.core.planner.overheads import DTYPE_BYTES
from ablate.core.reports.expected import TABLE, marks
from ablate.core.training.memory import OPTIM_STATES
from ablate.mask.masks import (
    check_policy,
    policy_forward_kwargs,
    text_config,
)


@torch.no_grad()
def incremental_logits(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_lengths: torch.Tensor | Sequence[int],
    policy: str,
) -> torch.Tensor:
    """Logits computed the way generation runs under ``policy``: every prompt in one prefill
    forward under the policy, then one cached single-token (causal) step per later token.

    Same layout and result shape as a teacher-forced ``model(**policy_forward_kwargs(...)).logits``
    (left or right padded rows, prompt first); pad positions are zero. Under ``causal`` and
    ``prefix_bidir`` the two agree (generation under the policy is what training scores), under
    ``prefill_bidir`` they do not.
    """
    from transformers import DynamicCache

    check_policy(policy)
    device = input_ids.device
    am = attention_mask.bool()
    lengths = [int(p) for p in prompt_lengths]
    rows = [input_ids[b][am[b]] for b in range(input_ids.shape[0])]
    n_prompt = max(lengths)
    n_steps = max(len(r) - p for r, p in zip(rows, lengths))
    # Prompts left-padded to a common end; continuations follow, right-padded with masked pads.
    width = n_prompt + n_steps
    ids = torch.zeros(len(rows), width, dtype=input_ids.dtype, device=device)
    mask = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    for b, (r, p) in enumerate(zip(rows, lengths)):
        ids[b, n_prompt - p : n_prompt - p + len(r)] = r
        mask[b, n_prompt - p : n_prompt - p + len(r)] = 1
    cache = DynamicCache(config=text_config(model))
    out = model(
        **policy_forward_kwargs(
            model,
            ids[:, :n_prompt],
            mask[:, :n_prompt],
            lengths,
            policy,
            past_key_values=cache,
        ),
        use_cache=True,
    )
    steps = [out.logits]
    for t in range(n_prompt, width):
        out = model(
            **policy_forward_kwargs(
                model,
                ids[:, t : t + 1],
                mask[:, : t + 1],
                lengths,
                policy,
                past_key_values=out.past_key_values,
            ),  # position t: read off the mask so far, as off the whole mask
            use_cache=True,
        )
        steps.append(out.logits)
    logits = torch.cat(steps, dim=1)
    result = torch.zeros(*input_ids.shape, logits.shape[-1], dtype=logits.dtype, device=device)
    for b, (r, p) in enumerate(zip(rows, lengths)):
        result[b][am[b]] = logits[b, n_prompt - p : n_prompt - p + len(r)]
    return result


def disk_need_mb(n_params: float, p: dict[str, Any], gpu: bool = True) -> float:
    """Disk a finetune of ``p`` (resolved params) writes at its peak, in MB, +10 %: what
    ``resources.finetune.disk_mb`` must cover (docs/training.md, "Disk").

    - the final checkpoint in ``save_dtype``, twice: a rerun writes ``final.tmp`` beside the
      previous ``final`` and replaces it only when complete;
    - with ``save_steps`` > 0, ``save_total_limit`` + 1 checkpoints (the loop writes the
      next before it deletes the oldest), each the weights in ``model_dtype``, the fp32 master
      copies (``master_weights``) and the optimizer states (fp32 on the masters, else the weights'
      dtype; adafactor's are factored: ~0).

    ``gpu`` picks how ``auto`` settings resolve (bf16 on a GPU, fp32 on the CPU).
    """
    bf16 = p["bf16"] == "auto" and gpu or p["bf16"] is True
    weights = 2 if (p["model_dtype"] == "auto" and bf16) else DTYPE_BYTES.get(p["model_dtype"], 4)
    master = weights < 4 if p["master_weights"] == "auto" else bool(p["master_weights"])
    final = 2 if (p["save_dtype"] == "auto" and bf16) else DTYPE_BYTES.get(p["save_dtype"], 4)
    per_param = 2 * final
    if p["save_steps"] > 0:
        states = OPTIM_STATES.get(p["optim"], 2) * (4 if master else weights)
        per_param += (p["save_total_limit"] + 1) * (weights + (4 if master else 0) + states)
    return n_params * per_param * 1.1 / 1e6


def page_table(page: Path, name: str = TABLE) -> str:
    """The section between the lines :func:`ablate.core.reports.expected.marks` gives for
    ``name`` in ``page`` (by default its table), as written."""
    begin, end = marks(name)
    return page.read_text().split(begin, 1)[1].split(end, 1)[0].strip()
