"""GPU watching with a fake NVML: the sampler reads the job's own devices, the record's
``gpu_use`` block, STATUS's utilisation column, MLflow's system-metric names; on a CPU (no NVML)
nothing is sampled or recorded."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest

from ablate.core.execution import gpu_watch
from ablate.core.jobs import Job
from ablate.core.outputs import provenance
from ablate.core.reports import status


class FakeNVML:
    """pynvml's calls the sampler makes, over devices of fixed utilisation and memory."""

    def __init__(self, devices):
        self.devices = devices  # [(uuid, name, util %, used MiB)]
        self.inits = 0

    def nvmlInit(self):
        self.inits += 1

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.devices[i]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return next(d for d in self.devices if d[0] == uuid)

    def nvmlDeviceGetName(self, h):
        return h[1].encode()

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=h[2], memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=h[3] * 2**20, total=80 * 2**30)


DEVICES = [("GPU-aaa", "H100 SXM", 90, 1000.0), ("GPU-bbb", "H100 SXM", 10, 3000.0)]


@pytest.fixture
def fake_nvml(monkeypatch):
    nvml = FakeNVML(DEVICES)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(gpu_watch, "_JOB", None)
    yield nvml
    if gpu_watch._JOB is not None:
        gpu_watch._JOB.stop()


def test_the_job_s_own_devices(fake_nvml):
    assert [d[0] for d in gpu_watch.job_devices(fake_nvml, None)] == ["GPU-aaa", "GPU-bbb"]
    assert [d[0] for d in gpu_watch.job_devices(fake_nvml, "1")] == ["GPU-bbb"]
    assert [d[0] for d in gpu_watch.job_devices(fake_nvml, "GPU-aaa")] == ["GPU-aaa"]
    assert gpu_watch.job_devices(fake_nvml, "") == []


def test_sampler_summarises_utilisation_and_memory(fake_nvml, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    sampler = gpu_watch.GpuSampler(interval_s=0.01)
    assert sampler.start()
    time.sleep(0.1)
    use = sampler.stop()
    assert len(sampler.samples) >= 3 and len(use["samples"]) == len(sampler.samples)
    assert use["util_mean_pct"] == 50.0 and use["mem_max_mib"] == 3000.0
    assert [d["util_mean_pct"] for d in use["devices"]] == [90.0, 10.0]
    assert use["devices"][0]["name"] == "H100 SXM"
    t, util, mem = use["samples"][-1]
    assert util == [90.0, 10.0] and mem == [1000.0, 3000.0] and t >= 0.1
    names = {n for n, _, _ in gpu_watch.mlflow_metrics(use)}
    assert names == {
        "system/gpu_0_utilization_percentage",
        "system/gpu_0_memory_usage_megabytes",
        "system/gpu_1_utilization_percentage",
        "system/gpu_1_memory_usage_megabytes",
    }


def test_a_gpu_job_records_its_use_and_status_shows_it(fake_nvml, monkeypatch, tmp_path):
    """The provenance block of a job that started the sampler holds ``gpu_use``; STATUS shows
    its mean utilisation in a column."""
    from ablate.core.outputs.io import write_json

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert gpu_watch.start(interval_s=0.01) is not None
    monkeypatch.setenv(provenance.WORKFLOW_DIR_ENV, str(tmp_path))  # the checkout: none here
    block = provenance.collect(config_slice={"a": 1})
    assert block["gpu_use"]["util_mean_pct"] == 90.0
    metrics = "results/eval/base/causal/metrics.json"
    write_json(tmp_path / metrics, {"provenance": block})
    job = Job("mask", "eval_model", "eval/base/causal", {}, {"metrics": metrics}, log=None,
              record=metrics, gpus=1)  # fmt: skip
    rows = status.job_rows([job], tmp_path)
    assert rows[0].gpu_util == 90.0
    text = status.render({"results": "results", "studies": ["mask"]}, rows, {}, [])
    header = next(line for line in text.splitlines() if line.startswith("| stage"))
    row = next(line for line in text.splitlines() if "eval/base/causal" in line)
    cells = dict(zip(header.split("|"), row.split("|")))
    assert cells[" GPU util % "].strip() == "90"


def test_on_a_cpu_nothing_is_sampled_or_recorded(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: import fails
    monkeypatch.setattr(gpu_watch, "_JOB", None)
    assert gpu_watch.start() is None and gpu_watch.current() is None
    monkeypatch.setenv(provenance.WORKFLOW_DIR_ENV, str(tmp_path))  # the checkout: none here
    assert "gpu_use" not in provenance.collect(config_slice={})
    job = Job("mask", "make_data", "make_data", {}, {"x": "x.txt"}, log=None)
    (tmp_path / "x.txt").write_text("x")
    text = status.render(
        {"results": "results", "studies": ["mask"]}, status.job_rows([job], tmp_path), {}, []
    )
    assert "GPU util" not in text
