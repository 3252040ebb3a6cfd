"""The planner's memory forecast (ablate.core.planner.memory): the need per GPU of each recipe."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ablate.core.jobs import Job
from ablate.core.planner.inputs import Reference
from ablate.core.planner.jobs import PlannedJob

REPO = Path(__file__).resolve().parents[3]


def test_memory_divides_over_the_gpus_of_the_sharded_recipe():
    """The need per GPU of sharded weights: fp32 params, grads and states / N + the gathered root
    and two layers + activations; of sharded masters: bf16 weights and their gathered copy,
    fp32 grads, fp32 masters and states / N + activations; the one-GPU recipe counts bf16 weights
    + fp32 masters, grads and states; gradient_checkpointing keeps one layer's activations
    instead of every layer's."""
    from ablate.core.planner.memory import ACTIVATION_BYTES, fewest_gpus, memory_need_gb
    from ablate.core.planner.params import model_shape

    ref = Reference.load(REPO / "config" / "gpu_measurements.yaml")
    shape = model_shape(ref.models["mistralai/Ministral-8B-Instruct-2410"]["text_config"])
    assert shape.params == pytest.approx(8.02e9, rel=1e-3) and (shape.hidden, shape.layers) == (
        4096,
        36,
    )
    plan = {"memory_margin": 0.0}
    job = PlannedJob(
        job=Job("mask", "finetune", "finetune/3A", {}, {}, None, kind="train"),
        model="3A",
        policy="causal",
        tokens=1.0,
        tokens_source="",
        params=shape.params,
        params_source="",
        dtype="auto",
        optim="adafactor",
        sharded=True,
        shape=shape,
        forward_tokens=1024,
    )
    act = 1024 * 4096 * 36 * ACTIVATION_BYTES / 1e9
    one = memory_need_gb(job, shape.params, plan, 1)[0]
    assert one == pytest.approx(shape.params * 10 / 1e9 + act)  # 2 + 4 + 4 B/param, adafactor
    gathered = (shape.root_params + 2 * shape.layer_params) * 8 / 1e9
    for n in (2, 4, 8):  # the GPU's memory unknown: the least memory, its weights sharded
        need, what = memory_need_gb(job, shape.params, plan, n)
        assert need == pytest.approx(shape.params * 8 / n / 1e9 + gathered + act)
        assert what.startswith("sharded_weights") and f"/ {n} GPUs" in what
    # the recipe the loop picks on a GPU of that memory (training.memory.data_parallel_recipe):
    # on 4 H200s the weights (and their gathered copy) and fp32 gradients fit whole, the masters
    # and states divided; on 2 they would not (over half the memory): sharded weights
    need, what = memory_need_gb(job, shape.params, plan, 4, 141)
    assert need == pytest.approx(shape.params * (2 * 2 + 4 + 4 / 4) / 1e9 + act)
    assert what.startswith("sharded_masters")
    assert memory_need_gb(job, shape.params, plan, 2, 141)[1].startswith("sharded_weights")
    assert fewest_gpus(job, shape.params, plan, 80, 8) == 2
    assert fewest_gpus(job, shape.params, plan, 141, 8) == 1
    assert fewest_gpus(job, shape.params, plan, 10, 8) is None
    # a replicated job (the bridge's data-parallel training) does not divide
    replicated = replace(job, sharded=False)
    assert memory_need_gb(replicated, shape.params, plan, 8)[0] == pytest.approx(one)
    ckpt = memory_need_gb(replace(job, gradient_checkpointing=True), shape.params, plan, 2)[0]
    assert ckpt == pytest.approx(
        memory_need_gb(job, shape.params, plan, 2)[0]
        - act
        + 1024 * 4096 * (36 * 2 + ACTIVATION_BYTES) / 1e9
    )
