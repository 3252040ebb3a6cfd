"""GPU memory a job needs per GPU (``fits_memory``): weights, training state, activations.

A data-parallel training on N > 1 GPUs is counted in the recipe the loop takes for the GPU's
memory (:func:`recipe_on`). What each recipe holds, and the measurements behind the activations:
docs/planner.md, "Memory".
"""

from __future__ import annotations

from ablate.core.planner.inputs import Measurement
from ablate.core.planner.overheads import DTYPE_BYTES
from ablate.core.planner.planned_jobs import PlannedJob
from ablate.core.training.memory import OPTIM_STATES, RECIPES, data_parallel_recipe

#: Activation bytes per token, decoder layer and hidden unit of a bf16 training step (logits and
#: loss included): the slope of measured peaks where only the micro-batch changes.
ACTIVATION_BYTES = 46
_ACTIVATION_SOURCE = "the slope of the peaks in bench/results/mfu_h100.md, section 2"
#: With gradient_checkpointing a layer keeps only its bf16 input (an assumption: not measured).
_CHECKPOINTED_INPUT_BYTES = 2
#: Decoder layers the sharded recipe holds gathered besides the root (current + prefetched).
_IN_FLIGHT_LAYERS = 2
#: Bytes per parameter of a gathered unit: bf16 parameters and gradients, fp32 gradients.
_IN_FLIGHT_BYTES = 8


def _one_process_bytes(job: PlannedJob, states: int) -> tuple[float, str]:
    """Bytes per parameter of a full finetune in one process (the 16-bit gradient is accumulated
    into the fp32 master's and freed); ``auto`` (bf16 where the GPU has it) counts as the larger of
    16-bit and fp32."""
    fp32 = (4 * (2 + states), f"fp32 weights + grads + {job.optim} states")
    sixteen = (
        (2 + 4 * (2 + states), f"bf16 weights + fp32 masters, grads and {job.optim} states")
        if job.master_weights
        else (2 * (2 + states), f"bf16 weights + grads + {job.optim} states")
    )
    if job.dtype == "float32":
        return fp32
    if job.dtype in DTYPE_BYTES:
        return sixteen
    return max(fp32, sixteen)


def _activation_gb(job: PlannedJob) -> tuple[float, str]:
    """Activations of one forward of one process, in GB, and how they were counted."""
    shape, tokens = job.shape, job.forward_tokens
    if shape is None or not tokens:
        return 0.0, "activations unknown (no model shape or tokens per forward): margin only"
    if job.gradient_checkpointing:
        per = shape.layers * _CHECKPOINTED_INPUT_BYTES + ACTIVATION_BYTES
        how = (
            f"{shape.layers} layers x {_CHECKPOINTED_INPUT_BYTES} B + one layer's "
            f"{ACTIVATION_BYTES} B (gradient_checkpointing)"
        )
    else:
        per = shape.layers * ACTIVATION_BYTES
        how = f"{shape.layers} layers x {ACTIVATION_BYTES} B ({_ACTIVATION_SOURCE})"
    gb = tokens * shape.hidden * per / 1e9
    return gb, f"activations {gb:.3g} GB: {tokens:.0f} tokens x hidden {shape.hidden} x {how}"


def _sharded_gb(job: PlannedJob, params: float, states: int, gpus: int) -> tuple[float, str]:
    """Sharded weights (FSDP2) on ``gpus`` GPUs: parameters, gradients and states + gathered units."""
    per = 4 * (2 + states)
    sharded = params * per / gpus / 1e9
    what = (
        f"{per} B/param (fp32 params + grads + {job.optim} states) / {gpus} GPUs = {sharded:.3g} GB"
    )
    if job.shape is None:
        return sharded, what + "; gathered layers unknown (no model shape)"
    units = job.shape.root_params + _IN_FLIGHT_LAYERS * job.shape.layer_params
    gathered = units * _IN_FLIGHT_BYTES / 1e9
    return sharded + gathered, (
        f"{what} + {gathered:.3g} GB gathered (root + {_IN_FLIGHT_LAYERS} decoder layers x "
        f"{_IN_FLIGHT_BYTES} B: bf16 params and grads, fp32 grads for the reduction)"
    )


def recipe_on(job: PlannedJob, params: float, gpus: int, memory: float | None) -> tuple[str, str]:
    """The loop's data-parallel recipe of a train ``job`` on ``gpus`` GPUs of ``memory`` GB (unknown
    memory: its weights sharded, the least memory)."""
    if memory is None and job.data_parallel is None:
        return RECIPES[1], "the GPU's memory unknown"
    return data_parallel_recipe(
        job.data_parallel,
        n_params=int(params),
        world=gpus,
        compute_bytes=2 if job.dtype in ("bfloat16", "float16", "auto") else 4,
        optim=job.optim or "",
        memory_bytes=int((memory or 0) * 2**30),
    )


def _sharded_masters_gb(
    job: PlannedJob, params: float, states: int, gpus: int
) -> tuple[float, str]:
    """Sharded masters on ``gpus`` GPUs (:mod:`ablate.core.training.sharded_masters`)."""
    per = 2 * 2 + 4 + 4 * (1 + states) / gpus
    return params * per / 1e9, (
        f"{per:.3g} B/param (bf16 weights + their gathered copy + fp32 grads, fp32 masters and "
        f"{job.optim} states / {gpus} GPUs)"
    )


def memory_need_gb(
    job: PlannedJob, params: float, plan: dict, gpus: int = 1, memory: float | None = None
) -> tuple[float, str]:
    """GB per GPU of ``job`` on ``gpus`` GPUs of ``memory`` GB each, margin included, and how."""
    b = DTYPE_BYTES.get(job.dtype, 4)
    margin = plan["memory_margin"]
    states = OPTIM_STATES.get(job.optim or "", 2)
    if job.kind == "train" and job.trainable_params is not None:
        # frozen weights in their dtype; the trained part in fp32 with grads and optimizer states
        need = (params * b + job.trainable_params * 4 * (1 + states)) / 1e9
        what = (
            f"{job.dtype} weights + {job.trainable_params / 1e6:.0f} M trained fp32 params x "
            f"(grads + {job.optim} states)"
        )
    elif job.kind == "train" and job.sharded and gpus > 1:
        recipe, why = recipe_on(job, params, gpus, memory)
        if recipe == RECIPES[0]:
            need, what = _sharded_masters_gb(job, params, states, gpus)
        else:
            need, what = _sharded_gb(job, params, states, gpus)
        what = f"{recipe} ({why}): {what}"
    elif job.kind == "train":
        per, what = _one_process_bytes(job, states)
        need, what = params * per / 1e9, f"{per:g} B/param ({what})"
    else:
        need, what = params * b / 1e9, f"{b:g} B/param ({job.dtype} weights)"
    if job.kind == "train" and job.trainable_params is None:
        act, act_what = _activation_gb(job)
        need, what = need + act, f"{what} + {act_what}"
    return need * (1 + margin), f"{what} + {margin:.0%} margin"


def measured_need_gb(
    job: PlannedJob, m: Measurement | None, plan: dict
) -> tuple[float, str] | None:
    """GB per GPU of ``job`` from the peak of ``m``, the measurement its rate comes from, with the
    margin; None unless it asks for it and ``m`` is of its kind and policy and records a peak."""
    if not job.memory_measured or m is None or m.peak_memory_gb is None:
        return None
    if m.kind != job.kind or m.policy != job.policy:
        return None
    margin = plan["memory_margin"]
    return m.peak_memory_gb * (1 + margin), (
        f"the measured peak {m.peak_memory_gb:g} GB of its rate's measurement ({m.kind}, "
        f"{m.policy}, on {m.gpu}) + {margin:.0%} margin"
    )


def fewest_gpus(job: PlannedJob, params: float, plan: dict, memory: float, most: int) -> int | None:
    """The fewest GPUs (at most ``most``) of ``memory`` GB on which ``job`` fits; None: none."""
    for n in range(1, most + 1):
        if memory_need_gb(job, params, plan, n, memory)[0] <= memory:
            return n
    return None
