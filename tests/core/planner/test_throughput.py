"""Tokens per second per GPU for a planned job on a setup (ablate.core.planner.throughput): the
measurement that fits it best, scaled by peak FLOP/s from another GPU, else the FLOP estimate.
Against the shipped measurements file: test_planner.py and test_overheads.py."""

from __future__ import annotations

import pytest

from ablate.core.jobs import Job
from ablate.core.planner.inputs import Measurement, Reference
from ablate.core.planner.planned_jobs import PlannedJob
from ablate.core.planner.throughput import pick_throughput
from ablate.core.planner.totals import FLOP_ESTIMATE

GPUS = {
    "A": {"tflops_bf16": 100, "source": "spec A"},
    "B": {"tflops_bf16": 400, "source": "spec B"},
}
REF = Reference(GPUS, {}, {}, {}, [], "m.yaml")
PLAN = {"mfu": {"train": 0.4, "eval": 0.5}, "cpu_gflops": 100}
SIZE = 1e9


def finetune(**kw) -> PlannedJob:
    job = Job(study="mask", rule="finetune", name="finetune/3A", wildcards={}, outputs={}, log=None)
    job.kind = "train"
    return PlannedJob(
        job, "3A", "causal", 1e6, "", kw.pop("params", SIZE), "the size's source", **kw
    )


def measured(gpu: str, tokens_per_s: float, source: str, **kw) -> Measurement:
    return Measurement(
        kw.pop("kind", "train"), "causal", gpu, kw.pop("params", SIZE), tokens_per_s, source,
        kw.pop("origin", "table"), **kw,
    )  # fmt: skip


def test_without_a_measurement_the_flop_estimate():
    got = pick_throughput(finetune(), "A", [], REF, PLAN)
    assert got.tok_s_per_gpu == pytest.approx(0.4 * 100e12 / (6 * SIZE))
    assert got.source == (
        f"{FLOP_ESTIMATE}: nothing measured for train of a 1 B model; 0.4 MFU x 100 TFLOP/s / "
        "(6 x params) [peak: spec A]"
    )
    own = pick_throughput(finetune(flops_per_token=2e9), "A", [], REF, PLAN)  # the study's count
    assert own.tok_s_per_gpu == pytest.approx(0.4 * 100e12 / 2e9)
    unknown = pick_throughput(finetune(), "C", [], REF, PLAN)
    assert unknown.tok_s_per_gpu is None and "no spec for GPU 'C'" in unknown.source
    size = pick_throughput(finetune(params=None), "A", [], REF, PLAN)
    assert (size.tok_s_per_gpu, size.source) == (None, "no throughput: the size's source")


def test_a_measurement_on_another_gpu_is_scaled_by_peak_flops():
    got = pick_throughput(finetune(), "A", [measured("B", 4000, "bench B")], REF, PLAN)
    assert got.tok_s_per_gpu == pytest.approx(1000)
    assert got.source == "measured on B, scaled by peak FLOP/s 400->100 T: bench B"
    on_a = [measured("B", 4000, "bench B"), measured("A", 900, "bench A")]
    got = pick_throughput(finetune(), "A", on_a, REF, PLAN)
    assert (got.tok_s_per_gpu, got.source) == (900, "measured on A: bench A")


def test_a_measurement_of_other_work_does_not_count():
    """Another size (over 5 %), the CPU for a GPU, another grad_accum, a GPU without a spec."""
    others = [
        measured("A", 1, "larger", params=1.06 * SIZE),
        measured("cpu", 1, "cpu run"),
        measured("A", 1, "grad_accum 1", grad_accum=1),
        measured("C", 1, "no spec"),
    ]
    job = finetune(train_shape={"grad_accum": 16})
    assert pick_throughput(job, "A", others, REF, PLAN).source.startswith(FLOP_ESTIMATE)
    near = measured("A", 700, "4 % larger", params=1.04 * SIZE)
    assert pick_throughput(job, "A", [*others, near], REF, PLAN).tok_s_per_gpu == 700


def test_the_preferred_measurement_and_what_its_source_says():
    """The job's packing mode beats the GPU (a step of short unpacked rows runs far below a packed
    one); on one GPU the pipeline's own run beats the table; the other mode is named."""
    packed = finetune(packing=True)
    unpacked_a = measured("A", 100, "unpacked on A", packing=False)
    packed_b = measured("B", 8000, "packed on B", packing=True)
    assert pick_throughput(packed, "A", [unpacked_a, packed_b], REF, PLAN).tok_s_per_gpu == 2000
    got = pick_throughput(packed, "A", [unpacked_a], REF, PLAN)
    assert got.source == ("measured on A, packing False (none for packing True): unpacked on A")
    ours = measured("A", 1200, "our run", origin="pipeline")
    table = measured("A", 1000, "bench table")
    assert pick_throughput(finetune(), "A", [table, ours], REF, PLAN).source.endswith("our run")


def test_other_work_per_token_scales_the_rate():
    """The bridge: the same model, another count of FLOPs per token per entry."""
    m = measured("A", 1000, "bench", flops_per_token=4e9)
    got = pick_throughput(finetune(flops_per_token=2e9), "A", [m], REF, PLAN)
    assert got.tok_s_per_gpu == pytest.approx(2000)
    assert ", x 2 for its FLOPs/token (4 measured vs 2 G)" in got.source
