"""A rerun with another process count between one process (whole weights) and a sharded run
(2 processes, FSDP2 with gloo on CPU) cannot load the other's checkpoints: it starts fresh and says
so in one line, in both directions (N -> M sharded processes reshards:
tests/core/test_sharded_resume.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import FAST
from sharded_setup import finetune_kwargs, process_path

from ablate.core import checkpoint, parallel
from ablate.mask.training.run import finetune

PARAMS = {
    **FAST,
    "batch_size": 2,
    "grad_accum": 2,  # one micro-batch per process
    "max_steps": 2,
    "save_steps": 1,
    "eval_size": 0,
    "eval_steps": 0,
    "keep_checkpoints": True,
}


def two_processes(kwargs: dict, out: Path, log: Path) -> dict:
    with process_path(), log.open("w") as f:
        parallel.launch(
            "ablate.mask.training.run:finetune",
            {**kwargs, "out_dir": str(out)},
            nproc=2,
            threads=1,
            log=f,
        )
    return json.loads((out / checkpoint.SUMMARY_NAME).read_text())


def killed_after_step_1(out: Path) -> None:
    shutil.rmtree(out / checkpoint.CHECKPOINTS_DIR / "checkpoint-2")
    shutil.rmtree(out / "final")
    (out / checkpoint.SUMMARY_NAME).unlink()


@pytest.mark.slow
def test_checkpoints_of_one_process_and_of_two_start_fresh_in_the_other(
    tiny_model_dir, tmp_path, capfd
):
    """1 -> 2, then 2 -> 1 (one test: a 2-process launch is most of its time)."""
    kwargs = finetune_kwargs(tiny_model_dir, tmp_path, PARAMS)
    out = tmp_path / "run"
    finetune(**kwargs, out_dir=out)
    killed_after_step_1(out)
    summary = two_processes(kwargs, out, tmp_path / "two.log")
    log = (tmp_path / "two.log").read_text()
    assert 'belong to another configuration (checkpoint_layout "whole" -> "sharded")' in log
    assert summary["resumed_from_step"] is None and summary["steps_done"] == 2
    marker = json.loads(
        (out / "checkpoints/checkpoint-1" / checkpoint.CHECKPOINT_MARKER).read_text()
    )
    assert marker["format"] == checkpoint.FORMAT_SHARDED

    killed_after_step_1(out)
    capfd.readouterr()
    summary = finetune(**kwargs, out_dir=out)
    err = capfd.readouterr().err
    assert 'belong to another configuration (checkpoint_layout "sharded" -> "whole")' in err
    assert summary["resumed_from_step"] is None and summary["steps_done"] == 2
