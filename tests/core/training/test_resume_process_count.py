"""A rerun with another process count. Between one process (whole weights) and a run whose
weights are sharded (2 processes, FSDP2 with gloo on CPU: ``data_parallel: sharded_weights``)
neither loads the other's checkpoints: it starts fresh and says so in one line, in both
directions. N -> M sharded processes reshards (bit for bit at the same count:
tests/core/test_sharded_resume.py). Sharded masters checkpoint whole weights, the one-process
optimizer's state gathered: any process count resumes them. With more processes than saved RNG
states, the others seed theirs, which the record says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import FAST
from sharded_setup import finetune_kwargs, process_path

from ablate.core.execution import parallel
from ablate.core.outputs import checkpoint_integrity
from ablate.mask.training.entries import finetune

PARAMS = {
    **FAST,
    "batch_size": 2,
    "grad_accum": 2,  # one micro-batch per process
    "data_parallel": "sharded_weights",  # one process: no meaning (the same run key)
    "max_steps": 2,
    "save_steps": 1,
    "eval_size": 0,
    "eval_steps": 0,
    "keep_checkpoints": True,
}


def processes(n: int, kwargs: dict, out: Path, log: Path) -> dict:
    with process_path(), log.open("w") as f:
        parallel.launch(
            "ablate.mask.training.entries:finetune",
            {**kwargs, "out_dir": str(out)},
            nproc=n,
            threads=1,
            log=f,
        )
    return json.loads((out / checkpoint_integrity.SUMMARY_NAME).read_text())


def two_processes(kwargs: dict, out: Path, log: Path) -> dict:
    return processes(2, kwargs, out, log)


def killed_after_step_1(out: Path) -> None:
    shutil.rmtree(out / checkpoint_integrity.CHECKPOINTS_DIR / "checkpoint-2")
    shutil.rmtree(out / "final")
    (out / checkpoint_integrity.SUMMARY_NAME).unlink()


@pytest.fixture(scope="module")
def one_then_two(tiny_model_dir, tmp_path_factory):
    """A one-process run killed after step 1, rerun on 2 sharded processes (which start fresh):
    its arguments, its folder, the rerun's summary and log. Made once: the first test reads the
    rerun, and the second resumes its checkpoint-1 on 4 processes (a copy each). The step's 8
    examples split over 1, 2 and 4 processes."""
    tmp_path = tmp_path_factory.mktemp("one_then_two")
    kwargs = finetune_kwargs(tiny_model_dir, tmp_path, {**PARAMS, "grad_accum": 4})
    out = tmp_path / "run"
    finetune(**kwargs, out_dir=out)
    killed_after_step_1(out)
    summary = two_processes(kwargs, out, tmp_path / "two.log")
    return kwargs, out, summary, (tmp_path / "two.log").read_text()


@pytest.mark.slow
@pytest.mark.xdist_group("one_then_two")  # one worker: the fixture's runs are made once
def test_checkpoints_of_one_process_and_of_two_start_fresh_in_the_other(
    one_then_two, tmp_path, capfd
):
    """1 -> 2, then 2 -> 1."""
    kwargs, run, summary, log = one_then_two
    assert 'belong to another configuration (checkpoint_layout "whole" -> "sharded")' in log
    assert summary["resumed_from_step"] is None and summary["steps_done"] == 2
    marker = json.loads(
        (run / "checkpoints/checkpoint-1" / checkpoint_integrity.CHECKPOINT_MARKER).read_text()
    )
    assert marker["format"] == checkpoint_integrity.FORMAT_SHARDED

    out = tmp_path / "run"
    shutil.copytree(run, out)
    killed_after_step_1(out)
    capfd.readouterr()
    summary = finetune(**kwargs, out_dir=out)
    err = capfd.readouterr().err
    assert 'belong to another configuration (checkpoint_layout "sharded" -> "whole")' in err
    assert summary["resumed_from_step"] is None and summary["steps_done"] == 2


@pytest.mark.slow
@pytest.mark.xdist_group("one_then_two")
def test_a_sharded_run_resumes_with_more_processes(one_then_two, tmp_path):
    """2 -> 4 processes: the checkpoint holds the RNG states of processes 0 and 1; 2 and 3 seed
    theirs (rank_seed), say so in one line, and the record names both segments."""
    kwargs, run, _, _ = one_then_two
    out = tmp_path / "run"
    shutil.copytree(run, out)
    killed_after_step_1(out)
    summary = processes(4, kwargs, out, tmp_path / "four.log")
    log = (tmp_path / "four.log").read_text()
    assert (
        "[resume] checkpoint-1 holds the RNG states of fewer processes than this run's 4: "
        "process(es) 2, 3 seed theirs from the run's seed, the step and their rank" in log
    )
    assert summary["resumed_from_step"] == 1 and summary["steps_done"] == 2
    first, second = summary["provenance"]["training_segments"]
    assert (first["steps"], first["world_size"]) == ([1, 1], 2)
    assert (second["steps"], second["world_size"]) == ([2, 2], 4)
    assert second["rng"] == {"restored": [0, 1], "seeded": [2, 3]}


@pytest.mark.slow
def test_sharded_masters_resume_on_another_process_count(tiny_model_dir, tmp_path):
    """2 processes of sharded masters -> 1, and 1 -> 2: each rerun resumes the other's
    checkpoint-1 (whole weights, the optimizer's state gathered in the one-process format)."""
    params = {k: v for k, v in PARAMS.items() if k != "data_parallel"}
    kwargs = finetune_kwargs(tiny_model_dir, tmp_path, params)
    out = tmp_path / "two-one"
    processes(2, kwargs, out, tmp_path / "two.log")
    assert "2 processes, sharded_masters" in (tmp_path / "two.log").read_text()
    marker = json.loads(
        (out / "checkpoints/checkpoint-1" / checkpoint_integrity.CHECKPOINT_MARKER).read_text()
    )
    assert marker["format"] == "whole"
    killed_after_step_1(out)
    summary = finetune(**kwargs, out_dir=out)
    assert summary["resumed_from_step"] == 1 and summary["steps_done"] == 2
    assert [s["world_size"] for s in summary["provenance"]["training_segments"]] == [2, 1]
    out = tmp_path / "one-two"
    finetune(**kwargs, out_dir=out)
    killed_after_step_1(out)
    summary = processes(2, kwargs, out, tmp_path / "again.log")
    assert summary["resumed_from_step"] == 1 and summary["steps_done"] == 2
    assert [s["world_size"] for s in summary["provenance"]["training_segments"]] == [1, 2]
