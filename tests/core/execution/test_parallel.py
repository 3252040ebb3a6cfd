"""The core's data-parallel launcher on CPU (torchrun, gloo): a failure in the processes reaches
the caller with their own error, not only torchrun's exit code."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ablate.core.execution import parallel

ROOT = Path(__file__).resolve().parents[3]


def test_a_failed_launch_names_the_processes_error(tmp_path, monkeypatch):
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    with open(tmp_path / "log", "w") as log, pytest.raises(RuntimeError) as failed:
        # json.loads("not json") raises in both processes, after they joined the group
        parallel.launch("json:loads", {"s": "not json"}, 2, 2, log=log)
    message = str(failed.value)
    assert "json:loads failed in 2 data-parallel processes" in message
    assert "JSONDecodeError" in message and str(tmp_path / "log") in message


def fail_while_the_other_waits() -> None:
    """Process 1 raises while process 0 waits in a collective process 1 never joins."""
    import torch
    import torch.distributed as dist

    if parallel.rank() == 1:
        raise ValueError("process 1 gave up")
    dist.all_reduce(torch.ones(1))


@pytest.mark.slow
def test_a_process_that_fails_while_another_waits_ends_the_launch(tmp_path, monkeypatch):
    """The launch ends with the failing process's error, soon, though the other process is
    blocked in an all-reduce (on NCCL a graceful leave waited for it: parallel.abort)."""
    here = Path(__file__).resolve().parent
    path = os.pathsep.join(
        filter(None, [str(ROOT / "src"), str(here), os.environ.get("PYTHONPATH")])
    )
    monkeypatch.setenv("PYTHONPATH", path)
    started = time.monotonic()
    with open(tmp_path / "log", "w") as log, pytest.raises(RuntimeError) as failed:
        parallel.launch("test_parallel:fail_while_the_other_waits", {}, 2, 2, log=log)
    assert time.monotonic() - started < 120
    assert "ValueError: process 1 gave up" in str(failed.value)
