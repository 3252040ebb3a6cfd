"""Sharded masters (ablate.core.training.sharded_masters) in 2 processes (gloo, CPU) against the
one-process optimizer on the same gradients (tests/core/sharded_masters_worker.py: fp32 masters
of 16-bit weights, or the optimizer on fp32 weights, as the loop builds them): the same weights,
gradient norms, masters and optimizer state; its state_dict is the one-process optimizer's, so a
checkpoint resumes on one process or on N.

Tolerances: fp32 to float rounding (the sum over processes is in another order). bf16 weights:
each process's gradient is rounded to bf16 before the processes' sum (one process rounds the
sum), so the masters differ by about a bf16 step of a gradient times the learning rate: measured
(2-core AMD EPYC) 2.1e-4 on the masters, 6e-4 relative on the gradient norm."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from sharded_setup import process_path

from ablate.core.execution import parallel
from ablate.core.training.optim import decay_groups
from ablate.core.training.sharded_masters import PADDING, backward_order, layout, owners

TOL = {"float32": 1e-6, "bfloat16": 1e-3}


def test_owners_balance_whole_parameters():
    assert owners([66, 42, 21, 7, 7, 7, 3], 2) == [0, 1, 1, 1, 0, 1, 0]
    sizes = [100, 90, 10, 10, 1]
    load = [sum(s for s, o in zip(sizes, owners(sizes, 3)) if o == r) for r in range(3)]
    assert sorted(load) == [21, 90, 100]


#: a tiny Llama's weights in the model's order: the embeddings, 3 decoder layers (q, k, v, o,
#: gate, up, down, the two norms), the final norm, an untied lm_head
LLAMA = [1024, *[256, 128, 128, 256, 512, 512, 512, 16, 16] * 3, 16, 1024]
BACKWARD = list(reversed(range(len(LLAMA))))


@pytest.mark.parametrize("world", [2, 3])
def test_buckets_hold_every_weight_in_the_backwards_order(world):
    """Each weight in one bucket, the buckets in the backward's order (the model's reversed),
    several of them, one after another; in each, every process's weights inside its own part,
    apart, and the parts padded by at most PADDING of the bucket's elements; the embeddings,
    whose gradient comes last, alone (reduced to one owner, no padding)."""
    buckets, owner, offsets = layout(LLAMA, world, BACKWARD)
    assert [i for b in buckets for i in b.params] == BACKWARD
    assert len(buckets) >= 3
    *split, alone = buckets
    assert alone.params == (0,) and alone.owner == owner[0] and alone.part == LLAMA[0]
    assert offsets[0] == alone.start
    for b in split:
        assert b.owner is None
        elements = sum(LLAMA[i] for i in b.params)
        assert world * b.part <= elements * (1 + PADDING), (b, elements)
        for r in range(world):
            spans = sorted((offsets[i], offsets[i] + LLAMA[i]) for i in b.params if owner[i] == r)
            assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
            assert (
                b.start + r * b.part <= spans[0][0] and spans[-1][1] <= b.start + (r + 1) * b.part
            )
    ends = list(itertools.accumulate(b.size(world) for b in buckets))
    assert [b.start for b in buckets] == [0, *ends[:-1]]


def test_a_large_last_weight_is_a_bucket_alone():
    """Tied embeddings: the largest weight's gradient comes last. Split by owners, it would take
    the other process's part of padding, or 1,000 elements of other weights held back until it
    is in (a 3.4 B model on 8 GPUs: 3.2 B of its 3.4 B); alone, it is reduced to its owner."""
    sizes = [1000, *[100] * 20]
    buckets, owner, _ = layout(sizes, 2, list(reversed(range(len(sizes)))))
    *split, last = buckets
    assert last.params == (0,) and last.owner == owner[0] and last.size(2) == 1000
    assert all(len(b.params) == 2 for b in split)  # 100 + 100: a bucket's worth, balanced
    assert sum(b.size(2) for b in buckets) == sum(sizes)  # no padding


#: (optim, dtype, clip) of test_two_processes_step_as_one
CASES = [
    ("adafactor", "float32", None),
    ("adamw", "float32", None),
    ("adafactor", "bfloat16", 0.5),
    ("adamw", "bfloat16", 0.5),
]


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> dict[tuple, dict]:
    """Each case's measurements by case, every case compared in one launch of 2 processes (the
    launch's start, 3 interpreters importing torch, costs more than the cases' steps)."""
    tmp = tmp_path_factory.mktemp("sharded_masters")
    outs = [tmp / f"case{i}.json" for i in range(len(CASES))]
    cases = [
        {"out": str(out), "optim": optim, "dtype": dtype, "clip": clip}
        for out, (optim, dtype, clip) in zip(outs, CASES, strict=True)
    ]
    with process_path(), (tmp / "log.txt").open("w") as log:
        kwargs = {"cases": cases}
        parallel.launch("sharded_masters_worker:compare_each", kwargs, nproc=2, threads=2, log=log)
    return {case: json.loads(out.read_text()) for case, out in zip(CASES, outs, strict=True)}


@pytest.mark.slow
@pytest.mark.xdist_group("sharded_masters")  # one worker: the cases' launch runs once
@pytest.mark.parametrize(("optim", "dtype", "clip"), CASES)
def test_two_processes_step_as_one(compared, optim, dtype, clip):
    r = compared[optim, dtype, clip]
    tol = TOL[dtype]
    assert r.get("masters", 0.0) <= tol and r["state"] <= tol, r  # fp32: no masters
    assert r["state_keys"] and r["groups"], r
    assert r["weights"] <= (tol if dtype == "float32" else 4e-3), r  # a bf16 step apart
    for a, b in zip(r["norms"], r["ref_norms"], strict=True):
        assert abs(a - b) <= tol * abs(b), r
    assert r["resumed"] == 0.0 and r["loaded_one"] == 0.0, r
    # buckets reduced during the last backward: the same numbers as reduced after it
    assert r["buckets"] >= 2 and r["overlapped"] == 0.0, r
    assert r["deep_norms"][0] == r["deep_norms"][1], r


def test_the_backward_order_is_the_models_reversed_not_the_groups():
    """The optimizer's groups hold every matrix, then every vector; a backward produces the
    last layer's gradients first, its bias and norm with its matrix."""
    m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2))
    params = [t for g in decay_groups(m, 0.1) for t in g["params"]]
    w0, b0, norm_w, norm_b, w2, b2 = m.parameters()
    assert params == [w0, w2, b0, norm_w, norm_b, b2]  # the groups' order
    assert [params[i] for i in backward_order(m, params)] == [b2, w2, norm_b, norm_w, b0, w0]
