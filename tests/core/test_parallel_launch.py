"""The core's data-parallel launcher on CPU (torchrun, gloo): a failure in the processes reaches
the caller with their own error, not only torchrun's exit code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ablate.core import parallel

ROOT = Path(__file__).resolve().parents[2]


def test_a_failed_launch_names_the_processes_error(tmp_path, monkeypatch):
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    with open(tmp_path / "log", "w") as log, pytest.raises(RuntimeError) as failed:
        # json.loads("not json") raises in both processes, after they joined the group
        parallel.launch("json:loads", {"s": "not json"}, 2, 2, log=log)
    message = str(failed.value)
    assert "json:loads failed in 2 data-parallel processes" in message
    assert "JSONDecodeError" in message and str(tmp_path / "log") in message
