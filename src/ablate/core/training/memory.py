"""Memory facts of a training run that the planner shares without torch: an optimizer's state
per weight, and which recipe a run of N processes takes (:func:`data_parallel_recipe`: the loop
decides with it, :mod:`ablate.core.planner.memory_need` forecasts with it)."""

from __future__ import annotations

#: Optimizer states per parameter, in the dtype of the weights it steps (torch allocates them
#: like the weights; Adafactor's are factored into row/column vectors: ~0).
OPTIM_STATES = {"adamw_torch": 2, "adamw_torch_fused": 2, "adafactor": 0, "sgd": 0}

#: The recipes of a run in N > 1 processes (param ``data_parallel``; docs/training.md):
#: :mod:`~ablate.core.training.sharded_masters` or :mod:`~ablate.core.training.sharding`
RECIPES = SHARDED_MASTERS, SHARDED_WEIGHTS = ("sharded_masters", "sharded_weights")
#: ``data_parallel`` unset: ``sharded_masters`` while the weights, gradients and optimizer state
#: a process then holds take at most this share of its device's memory (the rest: activations)
MASTERS_SHARE = 0.5


def data_parallel_recipe(
    setting: str | None,
    *,
    n_params: int,
    world: int,
    compute_bytes: int,
    optim: str,
    memory_bytes: int,
) -> tuple[str, str]:
    """(the recipe of :data:`RECIPES`, why) for ``n_params`` weights over ``world`` processes:
    ``setting`` when set, else ``sharded_masters`` where it fits (:data:`MASTERS_SHARE`)."""
    gib = 2**30
    states = 4 * OPTIM_STATES.get(optim, 2)
    need = n_params * (2 * compute_bytes + 4 + (4 + states) / world)
    why = f"sharded_masters keeps {need / gib:.1f} GiB of weights, gradients and optimizer state"
    if setting is not None:
        return setting, f"data_parallel: {setting} ({why})"
    fits = need <= MASTERS_SHARE * memory_bytes
    recipe = RECIPES[0] if fits else RECIPES[1]
    where = "within" if fits else "over"
    return recipe, f"{why}, {where} {MASTERS_SHARE:.0%} of {memory_bytes / gib:.0f} GiB"
