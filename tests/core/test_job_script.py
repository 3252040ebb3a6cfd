"""ablate.job_script.run_entry: the one launch of a job's entry point, in its process or in one
data-parallel process per GPU (both training job scripts: finetune.py, bridge_train.py)."""

from __future__ import annotations

import types

import pytest

from ablate import job_script
from ablate.core import parallel


def entry(x: int, reporters=()) -> dict:
    return {"x": x, "reporters": reporters}


def reporters(tag: str) -> tuple:
    return (tag,)


def job(gpu: int | None) -> types.SimpleNamespace:
    resources = types.SimpleNamespace(**({} if gpu is None else {"gpu": gpu}))
    return types.SimpleNamespace(resources=resources, threads=4, rule="train")


@pytest.fixture
def launched(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(parallel, "launch", lambda *a, **kw: calls.append((a, kw)))
    return calls


REPORTERS = {"call": "test_job_script:reporters", "kwargs": {"tag": "tb"}}


@pytest.mark.parametrize("gpu", [None, 0, 1])
def test_one_gpu_or_none_runs_the_entry_here_with_its_reporters(gpu, launched):
    out = job_script.run_entry(job(gpu), "test_job_script:entry", {"x": 3}, reporters=REPORTERS)
    assert out == {"x": 3, "reporters": ("tb",)} and not launched


def test_several_gpus_launch_one_process_each(launched):
    call, kwargs = "test_job_script:entry", {"x": 3}
    assert job_script.run_entry(job(4), call, kwargs, reporters=REPORTERS) is None
    assert launched == [((call, kwargs, 4, 4), {"reporters": REPORTERS})]


def test_configured_processes_need_as_many_gpus(launched):
    call, kwargs = "test_job_script:entry", {"x": 3}
    with pytest.raises(RuntimeError, match=r"^bridge.resources.train.gpu asks 2 .* gpu=1.*gpu=2\)"):
        job_script.run_entry(job(1), call, kwargs, processes=2, key="bridge.resources.train.gpu")
    assert job_script.run_entry(job(1), call, kwargs, processes=1)["x"] == 3
    job_script.run_entry(job(2), call, kwargs, processes=2)
    assert [a[2] for a, _ in launched] == [2]
