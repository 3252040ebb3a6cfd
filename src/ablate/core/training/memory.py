"""Memory facts of a training run that the planner shares without torch: an optimizer's state
per weight, and how long a sharded run keeps a layer's weights gathered (:func:`gather_mode`:
the loop decides with it, :mod:`ablate.core.planner.memory` forecasts with it)."""

from __future__ import annotations

#: Optimizer states per parameter, in the dtype of the weights it steps (torch allocates them
#: like the weights; Adafactor's are factored into row/column vectors: ~0).
OPTIM_STATES = {"adamw_torch": 2, "adamw_torch_fused": 2, "adafactor": 0, "sgd": 0}

#: How long a sharded run keeps a layer's weights gathered (param ``gather_weights``): for the
#: whole optimizer step (``step``: one all-gather and one reduce-scatter per layer and step,
#: whatever the micro-batches; a whole compute-dtype copy of the weights and an fp32 copy of the
#: gradients on every GPU), or for one forward or backward of one layer (``layer``: gathered
#: again for each; the least memory: fully sharded).
GATHER_MODES = ("step", "layer")
#: ``gather_weights`` unset (auto): ``step`` while the weights, gradients and optimizer state a
#: process holds then take at most this share of its device's memory (the rest: activations)
GATHER_STEP_SHARE = 0.5


def gather_mode(
    setting: str | None,
    *,
    n_params: int,
    world: int,
    compute_bytes: int,
    accumulates: bool,
    optim: str,
    memory_bytes: int,
) -> tuple[str, str]:
    """(the mode of :data:`GATHER_MODES`, why) for ``n_params`` weights over ``world`` processes,
    each with ``memory_bytes`` of device memory: ``setting`` when set, else ``step`` where it fits
    (:data:`GATHER_STEP_SHARE`). Kept per process in ``step`` mode: the gathered weights
    (``compute_bytes`` each), their fp32 gradients when a process accumulates several
    micro-batches, and 1/``world`` of the fp32 weights, their gradients and ``optim``'s states."""
    gib = 2**30
    states = 4 * OPTIM_STATES.get(optim, 2)
    need = n_params * (compute_bytes + 4 * accumulates + (8 + states) / world)
    why = f"{need / gib:.1f} GiB of weights, gradients and optimizer state per process in step mode"
    if setting is not None:
        return setting, f"gather_weights: {setting} ({why})"
    limit = GATHER_STEP_SHARE * memory_bytes
    if need <= limit:
        return "step", f"{why}, within {GATHER_STEP_SHARE:.0%} of {memory_bytes / gib:.0f} GiB"
    return "layer", f"{why}, over {GATHER_STEP_SHARE:.0%} of {memory_bytes / gib:.0f} GiB"
