"""The collectives of one optimizer step in 2 processes (gloo, CPU), counted by torch's profiler
(tests/core/step_collectives.py): the gradients are reduced once per step, however many
micro-batches a process accumulates, under each data-parallel recipe; under sharded masters in
buckets, started in the step's last backward.

Each process takes 2 micro-batches a step (batch 1 x grad_accum 4 over 2 processes). The tiny
Llama is 4 FSDP2 units (3 decoder layers and the root). Measured before the step synced once
(the backward outside FSDP2's no-sync flag, the sharded Adafactor reducing per statistic): 8
reduce-scatters, 14 all-gathers and 78 all-reduces in the sharded step; 2 gradient all-reduces
under DDP. Before the buckets, sharded masters reduced every gradient in one reduce-scatter after
the backward (the clip's), and gathered every weight in one all-gather."""

from __future__ import annotations

import json

import pytest
from sharded_setup import process_path
from step_collectives import ACCUMULATE, LAYERS

from ablate.core.execution import parallel

UNITS = LAYERS + 1  # FSDP2 units: each decoder layer, and the root
MICRO = 2  # micro-batches per process and step
GATHERS, SCATTERS, REDUCES, TO_ONE, FROM_ONE = (
    "c10d::_allgather_base_",
    "c10d::_reduce_scatter_base_",
    "c10d::allreduce_",
    "c10d::reduce_",
    "c10d::broadcast_",
)
#: the step's all-reduces besides the gradients': the label count of the step (the loop's
#: ``parallel.sum_int``) and the gradient norm of the clip
STEP_REDUCES = 2
OPTIMIZER_REDUCES = 2  # FSDP2's Adafactor: the column/row means, then the updates' RMS
ADAFACTOR = {"batch_size": 1, "grad_accum": 4, "optim": "adafactor"}

#: each test's case: the run's overrides, and whether the model is replicated (DDP)
CASES = {
    "sharded_masters": (ADAFACTOR, False),
    "sharded_weights": ({**ADAFACTOR, "data_parallel": "sharded_weights"}, False),
    "replicated": ({**ADAFACTOR, "optim": "adamw_torch", "max_grad_norm": 0}, True),
}

# torchrun processes; one worker: the cases' launch runs once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("step_collectives")]


@pytest.fixture(scope="module")
def counted(tmp_path_factory) -> dict[str, dict]:
    """Each case's counts by name, every case counted in one launch of 2 processes (the
    launch's start, 3 interpreters importing torch and transformers, costs more than a case)."""
    tmp = tmp_path_factory.mktemp("step_collectives")
    outs = {name: tmp / name / "counts.json" for name in CASES}
    cases = []
    for name, (overrides, replicated) in CASES.items():
        outs[name].parent.mkdir()
        cases.append({"out": str(outs[name]), "overrides": overrides, "replicated": replicated})
    with process_path(), (tmp / "log.txt").open("w") as log:
        parallel.launch(
            "step_collectives:count_each", {"cases": cases}, nproc=2, threads=2, log=log
        )
    return {name: json.loads(out.read_text()) for name, out in outs.items()}


def test_sharded_masters_reduce_each_bucket_in_the_last_backward(counted):
    """The default where the weights fit: one reduce-scatter and one all-gather per bucket of
    weights, the embeddings (a bucket alone, their gradient last) reduced to their owner and
    broadcast from it, the clip's norm; the optimizer steps whole parameters (none of its own).
    The reduce-scatters start inside the step's last backward, none in the one before: the first
    before half of the backward's gradients are in (the buckets follow the backward's order)."""
    got = counted["sharded_masters"]
    assert got["recipe"] == "sharded_masters"
    alone, split = got["alone"], got["buckets"] - got["alone"]
    assert alone == 1 and split >= 2, got["buckets"]
    assert got["counts"] == {
        GATHERS: split,
        SCATTERS: split,
        TO_ONE: alone,
        FROM_ONE: alone,
        REDUCES: STEP_REDUCES,
    }
    accumulations = [(start, end) for name, start, end in got["timeline"] if name == ACCUMULATE]
    scatters = [start for name, start, _ in got["timeline"] if name == SCATTERS]
    assert len(accumulations) == MICRO * got["weights"]  # every weight, in each backward
    first, last = accumulations[: got["weights"]], accumulations[got["weights"] :]
    assert first[-1][1] < scatters[0], (accumulations, scatters)  # none in the first backward
    before = sum(start < scatters[0] for start, _ in last)  # measured: 11 of 30
    assert before < len(last) / 2, f"the first reduce-scatter after {before} of {len(last)}"


def test_sharded_weights_reduce_once_a_step(counted):
    """FSDP2: each micro-batch gathers every unit for its forward and every layer again for its
    backward (FSDP2 keeps the root gathered), the gradients reduce once; Adafactor's statistics
    across the shards in two all-reduces."""
    got = counted["sharded_weights"]
    assert got["recipe"] == "sharded_weights"
    assert got["counts"] == {
        GATHERS: MICRO * (2 * UNITS - 1),
        SCATTERS: UNITS,
        REDUCES: STEP_REDUCES + OPTIMIZER_REDUCES,
    }


def test_replicated_step_reduces_once(counted):
    """DDP (a replicated model, the bridge's translator): one gradient all-reduce a step (the
    tiny model is one bucket), not one per micro-batch; AdamW, without a clip."""
    got = counted["replicated"]
    assert got["counts"][REDUCES] == 1 + 1  # the label count, the gradients
    assert GATHERS not in got["counts"] and SCATTERS not in got["counts"]
