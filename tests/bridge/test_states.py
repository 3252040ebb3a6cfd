"""Frozen-state extraction over a job's GPUs: the core's launcher, 2 gloo processes on CPU, writes
the cache one process writes, byte for byte (the micro model pair of bridge_fixtures)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bridge_fixtures import MICRO_PARAMS

from ablate.bridge import params as bridge_params
from ablate.bridge import states, world
from ablate.core.execution import parallel

ROOT = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a cache but its records (summary.json and its history: times)."""
    files = sorted(folder.rglob("*.*"))
    return {str(f.relative_to(folder)): f.read_bytes() for f in files if "summary" not in f.name}


@pytest.mark.slow  # the core launcher, 2 processes
@pytest.mark.parametrize("what, role", [("source", "source"), ("teacher", "target")])
def test_two_processes_write_the_one_process_cache(
    what, role, bridge_world, bridge_cards, tmp_path, monkeypatch
):
    """Batches of 3 over 16 train items (6 batches: 3 each) and 8 test items (3 batches: 2 and
    1, a short last round): every shard and index file equal to one process's."""
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)  # the launcher's processes import this checkout
    p = bridge_params.resolve({**MICRO_PARAMS, "model_dtype": "float32"})
    out, logs = {}, {}
    for n in (1, 2):
        kwargs = dict(
            spec=states.StatesSpec(what, {**p, "eval_batch_size": 3}, "gsm8k", 8),
            model_card=str(bridge_cards[role]),
            train_file=str(bridge_world["gsm8k_train"]),
            eval_file=str(bridge_world["gsm8k_test"]),
            out_dir=str(tmp_path / f"{what}-{n}"),
        )
        with open(tmp_path / f"log-{n}", "w") as log:
            parallel.launch("ablate.bridge.states:compute", kwargs, n, n, log=log)
        out[n] = _files(tmp_path / f"{what}-{n}")
        logs[n] = (tmp_path / f"log-{n}").read_text()
    assert len(world.load_dataset(bridge_world["gsm8k_train"], "gsm8k")) == 16
    assert any(k.endswith(".npy") for k in out[1]) and any(k.endswith("index.json") for k in out[1])
    assert out[2] == out[1]
    summary = json.loads((tmp_path / f"{what}-2" / "summary.json").read_text())
    assert summary["processes"] == 2
    # each process ran its share of the batches, not all of them
    assert "process 0 of 2 extracted 3 of 6 batches" in logs[2]
    assert "process 1 of 2 extracted 3 of 6 batches" in logs[2]
    if what == "source":
        assert "process 0 of 2 extracted 2 of 3 batches" in logs[2]
        assert "process 1 of 2 extracted 1 of 3 batches" in logs[2]
    assert "process 1" not in logs[1]
