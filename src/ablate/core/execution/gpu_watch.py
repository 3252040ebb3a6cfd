"""How busy a job's GPUs were: a background thread samples the job's devices through NVML every
few seconds, so an idle GPU shows in the job's record, in STATUS and in the trackers.

Without NVML (a CPU host, ``nvidia-ml-py`` not installed) nothing is recorded. No torch: sampling
never initialises CUDA.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

#: seconds between two samples
_INTERVAL_S = 2.0


@dataclass
class _Sample:
    t: float  # seconds since the sampler started
    util_pct: list[float]  # per device
    mem_mib: list[float]  # per device


def _nvml() -> Any | None:
    """The NVML module, initialised; None without the package or a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - ImportError, NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    return pynvml


def job_devices(nvml: Any, visible: str | None) -> list[Any]:
    """NVML handles of the job's devices: ``visible`` (``CUDA_VISIBLE_DEVICES``: indices or
    UUIDs; empty hides every device), every device when it is None."""
    if visible is None:
        return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    return [
        nvml.nvmlDeviceGetHandleByUUID(dev)
        if dev.startswith(("GPU-", "MIG-"))
        else nvml.nvmlDeviceGetHandleByIndex(int(dev))
        for dev in (d.strip() for d in visible.split(","))
        if dev
    ]


@dataclass
class GpuSampler:
    """Samples the job's devices on a daemon thread from :meth:`start` to :meth:`stop`."""

    interval_s: float = _INTERVAL_S
    nvml: Any = None
    samples: list[_Sample] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _t0: float = 0.0

    def start(self) -> bool:
        """Start sampling; False (nothing sampled) without NVML or without a device."""
        self.nvml = self.nvml or _nvml()
        if self.nvml is None:
            return False
        self._handles = job_devices(self.nvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if not self._handles:
            return False
        names = [self.nvml.nvmlDeviceGetName(h) for h in self._handles]
        self.names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        self._t0 = time.monotonic()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="gpu-watch", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> _Sample | None:
        """One sample of every device (also called by the thread); None when NVML fails."""
        try:
            util = [float(self.nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self._handles]
            mem = [self.nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20 for h in self._handles]
        except Exception:  # noqa: BLE001 - a device lost mid-run: keep what was sampled
            return None
        s = _Sample(round(time.monotonic() - self._t0, 3), util, mem)
        self.samples.append(s)
        return s

    def stop(self) -> dict[str, Any] | None:
        """Stop sampling (one last sample) and return :meth:`summary`."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()
        return self.summary()

    def summary(self) -> dict[str, Any] | None:
        """The record's ``gpu_use`` block: per device and over all, mean and peak utilisation
        (percent of the time a kernel ran) and memory (MiB), the interval and every sample; None
        before any sample."""
        if not self.samples:
            return None
        n = len(self._handles) or len(self.samples[0].util_pct)
        devices = []
        for i in range(n):
            util = [s.util_pct[i] for s in self.samples]
            mem = [s.mem_mib[i] for s in self.samples]
            devices.append(
                {
                    "name": self.names[i] if i < len(self.names) else "",
                    "util_mean_pct": round(sum(util) / len(util), 1),
                    "util_max_pct": max(util),
                    "mem_mean_mib": round(sum(mem) / len(mem), 1),
                    "mem_max_mib": round(max(mem), 1),
                }
            )
        return {
            "interval_s": self.interval_s,
            "util_mean_pct": round(sum(d["util_mean_pct"] for d in devices) / n, 1),
            "mem_max_mib": max(d["mem_max_mib"] for d in devices),
            "devices": devices,
            "samples": [[s.t, s.util_pct, [round(m, 1) for m in s.mem_mib]] for s in self.samples],
        }


#: the sampler of this process's job (:func:`start`), read by :func:`current`
_JOB: GpuSampler | None = None


def start(interval_s: float = _INTERVAL_S) -> GpuSampler | None:
    """Start sampling this job's GPUs (once per process); None on a CPU."""
    global _JOB
    if _JOB is None:
        sampler = GpuSampler(interval_s)
        if sampler.start():
            _JOB = sampler
    return _JOB


def latest() -> _Sample | None:
    """This job's last sample (TensorBoard's GPU curves); None on a CPU or before one."""
    return _JOB.samples[-1] if _JOB is not None and _JOB.samples else None


def mlflow_metrics(gpu_use: dict[str, Any] | None) -> list[tuple[str, float, int]]:
    """(name, value, step: its second) of a record's ``gpu_use`` samples under MLflow's names."""
    out: list[tuple[str, float, int]] = []
    for t, util, mem in (gpu_use or {}).get("samples", []):
        for i, (u, m) in enumerate(zip(util, mem)):
            out += [
                (f"system/gpu_{i}_utilization_percentage", float(u), int(t)),
                (f"system/gpu_{i}_memory_usage_megabytes", float(m), int(t)),
            ]
    return out


def current() -> dict[str, Any] | None:
    """The ``gpu_use`` block of this job so far (a sample taken now); None on a CPU."""
    if _JOB is None:
        return None
    _JOB.sample()
    return _JOB.summary()
