"""What the training loop's switches do, given the other settings: the one place the loop
(:mod:`ablate.bridge.pair`, :mod:`ablate.bridge.training`) and the run identity
(:func:`ablate.bridge.params.canonical`) read them.

Two settings of the switches with one :func:`behaviour` train alike, so the identity keeps one of
them (:func:`canonical`): a setting that cannot act never splits a run. ``BridgeParams`` is
imported for the annotations only (``params`` calls :func:`canonical`: a circle at run time).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ablate.bridge.params import BridgeParams

#: The parameters read only here (a test checks no other bridge module reads them).
SWITCHES = (
    "kl_after_warmup",
    "kl_positions",
    "early_stopping",
    "patience",
    "infonce_temperature",
    "infonce_group",
    "kl_reduction",
    "kl_teacher",
    "infonce_prompt",
    "prompt_align",
    "kl_rows",
)


def kl_steps(p: BridgeParams) -> range:
    """The optimizer steps (counted from 1) whose loss has the KL term."""
    if p.kl_weight <= 0:
        return range(0)
    first = p.warmup_steps + 1 if p.kl_after_warmup else 1
    return range(first, p.steps + 1)


def kl_last_row(p: BridgeParams) -> bool:
    """Whether the KL also counts the row at the answer's last token (``kl_rows: original``):
    only where no label follows the answer (under ``nll_labels: answer`` that row predicts the EOS
    label, counted either way) and the teacher reads the answer."""
    return (
        bool(kl_steps(p))
        and p.kl_teacher != "prompt_only"
        and p.nll_labels == "original"
        and p.kl_rows == "original"
    )


def stop_patience(p: BridgeParams) -> int | None:
    """Evaluations without a better accuracy that end the training early, or None where fewer
    than ``patience`` fall before the last step (the one at step 0 always improves)."""
    can_stop_at = (p.steps - 1) // p.eval_every  # evaluations strictly inside the run
    if not p.early_stopping or p.patience > can_stop_at:
        return None
    return p.patience


def infonce_group(p: BridgeParams) -> int:
    """Rows per InfoNCE group: ``infonce_group``, or (null) the process's whole batch."""
    return p.infonce_group or p.batch_size


def behaviour(p: BridgeParams) -> dict[str, Any]:
    """Everything the switches change in a run: equal behaviours, equal trainings."""
    kl = kl_steps(p)
    return {
        "kl_steps": (kl.start, kl.stop) if kl else None,
        "kl_positions": p.kl_positions if kl else None,
        "stop_patience": stop_patience(p),
        "infonce_temperature": p.infonce_temperature if p.infonce_weight > 0 else None,
        "infonce_group": infonce_group(p) if p.infonce_weight > 0 else None,
        "kl_reduction": p.kl_reduction if kl else None,
        "kl_teacher": p.kl_teacher if kl else None,
        "infonce_prompt": p.infonce_prompt if p.infonce_weight > 0 else None,
        "prompt_align": p.prompt_align if p.prompt_align_weight > 0 else None,
        "kl_last_row": kl_last_row(p),
    }


def canonical(p: BridgeParams, defaults: BridgeParams) -> BridgeParams:
    """``p`` with its switches set to one representative of its behaviour: of the settings of
    that behaviour (each switch at its value, its default, or a boolean's negation), the one with
    the fewest non-boolean, then boolean switches off their defaults."""
    target = behaviour(p)
    options = []
    for k in SWITCHES:
        value = getattr(p, k)
        negation = (not value,) if isinstance(value, bool) else ()
        options.append(dict.fromkeys([getattr(defaults, k), value, *negation]))

    def cost(q: BridgeParams) -> tuple[int, int]:
        off = [k for k in SWITCHES if getattr(q, k) != getattr(defaults, k)]
        return sum(not isinstance(getattr(q, k), bool) for k in off), len(off)

    best = p
    for values in itertools.product(*options):
        q = dataclasses.replace(p, **dict(zip(SWITCHES, values, strict=True)))
        if cost(q) < cost(best) and behaviour(q) == target:
            best = q
    return best
