"""A config whose jobs ask for GPUs, run locally where none is visible, stops at parse time in one
line (ablate.core.execution.preflight): the smoke config built its 3.4 B model on the CPU until the
out-of-memory killer ended it. A profile that sends the jobs elsewhere is not stopped."""

from __future__ import annotations

import sys
import time

import pytest
from helpers import dry_run

SMOKE = "config/ministral3b-smoke.yaml"
#: a machine without a GPU, wherever the test runs: an empty CUDA_VISIBLE_DEVICES is an empty
#: pool (ablate.core.execution.gpus.pool), as on this CPU machine, where nvidia-smi does not exist
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(autouse=True)
def no_fake_gpu_pool(monkeypatch):
    monkeypatch.delenv("ABLATE_GPU_IDS", raising=False)


def test_gpu_config_without_a_gpu_stops_at_the_dry_run(workflow_copy):
    started = time.monotonic()
    r = dry_run(workflow_copy, "-n", "-c2", "--configfile", SMOKE, env=NO_GPU)
    took = time.monotonic() - started
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    line = next(x for x in out.splitlines() if x.startswith(SMOKE))
    assert "mask.resources.prepare_model.gpu: 1" in line, line
    assert "CUDA_VISIBLE_DEVICES is empty" in line, line
    assert "--profile slurm" in line and "--config allow_cpu=true" in line, line
    assert "Building DAG" not in out, out[-3000:]  # at parse time, before any job is planned
    assert took < 60, took


@pytest.mark.parametrize(
    "args",
    [
        ("--profile", "profiles/slurm"),  # the jobs run on the cluster's GPU nodes
        ("--profile", "profiles/vast"),  # each on a rented GPU instance
        ("--config", "allow_cpu=true"),  # the deliberate CPU run
        ("results/smoke/plan.csv",),  # the forecast before renting runs no GPU job
    ],
    ids=["slurm", "vast", "allow_cpu", "plan-alone"],
)
def test_gpu_config_runs_where_jobs_go_elsewhere_or_on_purpose(workflow_copy, args):
    r = dry_run(workflow_copy, "-n", *args, "--configfile", SMOKE, env=NO_GPU)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]


def test_gpu_error_needs_every_condition(monkeypatch):
    """Unit view: a visible GPU, a config without GPU requests, finished GPU jobs, a command
    that runs no job, or Snakemake through its API each lets the run through."""
    from ablate.core.execution.preflight import gpu_error

    cfg = {"mask": {"resources": {"eval": {"gpu": 1}, "make": {"gpu": 0}}}}
    cli = ["/venv/bin/snakemake", "-n"]

    def error(config, studies, gpu_jobs_to_run=True, alone=(), argv=cli):
        monkeypatch.setattr(sys, "argv", argv)  # the command line this process runs
        return gpu_error(config, studies, ["c.yaml"], gpu_jobs_to_run, alone)

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert error(cfg, ["mask"]).startswith(
        "c.yaml: its jobs ask for a GPU (mask.resources.eval.gpu: 1) and this machine shows none"
    )
    assert error({**cfg, "allow_cpu": True}, ["mask"]) is None
    assert error(cfg, ["mask"], False) is None  # nothing left to run
    assert error(cfg, ["bridge"]) is None  # not this study's
    assert error(cfg, ["mask"], argv=[*cli, "--lint"]) is None
    assert error(cfg, ["mask"], argv=["/venv/bin/pytest"]) is None
    assert error(cfg, ["mask"], True, ["r/plan.csv"], [*cli, "r/plan.csv"]) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert error(cfg, ["mask"]) is None  # a GPU is visible
