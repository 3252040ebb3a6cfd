"""A sharded run's checkpoints resume exactly: 2 processes (FSDP2: ``data_parallel:
sharded_weights``, gloo on CPU), Adafactor
with a decaying learning rate, a checkpoint every 2 steps. Losing everything after checkpoint-2 (as
a run killed there) and rerunning, or a SIGTERM that reaches one process alone during step 3 (both
stop there and save), then a rerun, gives the uninterrupted run's loss and grad norm at every step
and its final weights, bit for bit (the weights, the optimizer's row statistics on each process,
the scheduler and the RNG states are all in the checkpoint)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import FAST, weights
from sharded_setup import finetune_kwargs, process_path

from ablate.core.execution import parallel
from ablate.core.outputs import checkpoint_integrity
from ablate.core.training import saving, sharding
from ablate.core.training.loop import State

PARAMS = {
    **FAST,
    "batch_size": 2,
    "grad_accum": 2,  # one micro-batch per process
    "optim": "adafactor",
    "data_parallel": "sharded_weights",
    "learning_rate": 1e-3,
    "lr_scheduler": "linear",  # the scheduler's position must come back too
    "max_steps": 4,
    "save_steps": 2,
    "eval_size": 0,
    "eval_steps": 0,
    "keep_checkpoints": True,
}


def _launch(kwargs: dict, out: Path, log: Path, reporters=None) -> dict:
    with log.open("w") as f:
        parallel.launch(
            "ablate.mask.training.entries:finetune",
            {**kwargs, "out_dir": str(out)},
            nproc=2,
            threads=2,
            log=f,
            reporters=reporters,
        )
    return json.loads((out / "summary.json").read_text())


def _curve(summary: dict) -> list[tuple]:
    return [(e["step"], e["loss"], e["grad_norm"]) for e in summary["curves"]["train"]]


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, tmp_path_factory):
    """The reference: the uninterrupted 2-process run (its checkpoints kept), run once."""
    tmp_path = tmp_path_factory.mktemp("sharded_resume")
    kwargs = finetune_kwargs(tiny_model_dir, tmp_path, PARAMS)
    with process_path():
        out = tmp_path / "run"
        summary = _launch(kwargs, out, tmp_path / "uninterrupted.log")
        yield kwargs, out, summary, weights(out / "final")


@pytest.mark.slow
def test_sharded_run_resumes_exactly(uninterrupted, tmp_path):
    kwargs, ref_out, reference, ref_weights = uninterrupted
    ckpt2 = ref_out / checkpoint_integrity.CHECKPOINTS_DIR / "checkpoint-2"
    marker = json.loads((ckpt2 / checkpoint_integrity.CHECKPOINT_MARKER).read_text())
    assert marker["format"] == checkpoint_integrity.FORMAT_SHARDED
    assert (ckpt2 / sharding.SHARDS_DIR / ".metadata").is_file()
    assert {p.name for p in ckpt2.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    # the schedule's position and the loop's state (step, tokens, log history): written once
    assert all((ckpt2 / f).is_file() for f in (saving.SCHEDULER, saving.LOOP_STATE))
    assert saving.load_state(ckpt2, State, PARAMS["max_steps"]).step == 2

    # as if killed after checkpoint-2: the later checkpoint, the final weights, the summary lost
    out = tmp_path / "run"
    shutil.copytree(ref_out, out)
    shutil.rmtree(out / checkpoint_integrity.CHECKPOINTS_DIR / "checkpoint-4")
    shutil.rmtree(out / "final")
    (out / "summary.json").unlink()
    resumed = _launch(kwargs, out, tmp_path / "resumed.log")
    assert resumed["resumed_from_step"] == 2
    assert resumed["steps_done"] == reference["steps_done"] == PARAMS["max_steps"]
    assert _curve(resumed) == _curve(reference)
    got = weights(out / "final")
    assert got.keys() == ref_weights.keys()
    assert all(torch.equal(got[k], ref_weights[k]) for k in ref_weights)


@pytest.mark.slow
def test_signal_to_one_process_stops_both_at_one_step(uninterrupted, tmp_path):
    kwargs, _, reference, ref_weights = uninterrupted
    out = tmp_path / "run"
    hook = {"call": "launch_hooks:sigterm_to_process_1", "kwargs": {"step": 3}}
    with pytest.raises(RuntimeError, match="failed in 2 data-parallel processes"):
        _launch(kwargs, out, tmp_path / "interrupted.log", reporters=hook)
    log = (tmp_path / "interrupted.log").read_text()
    assert "training stopped by SIGTERM after step 3" in log  # process 1
    assert "training stopped by another process's signal after step 3" in log  # process 0
    assert not (out / "summary.json").exists()
    done = checkpoint_integrity.complete_checkpoints(out / checkpoint_integrity.CHECKPOINTS_DIR)
    assert [d.name for d in done] == ["checkpoint-2", "checkpoint-3"]

    resumed = _launch(kwargs, out, tmp_path / "resumed.log")
    assert resumed["resumed_from_step"] == 3
    assert _curve(resumed) == _curve(reference)
    got = weights(out / "final")
    assert all(torch.equal(got[k], ref_weights[k]) for k in ref_weights)
