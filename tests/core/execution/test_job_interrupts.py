"""A job interrupted (Ctrl-C, SIGTERM) ends its log with one line, not a traceback: Snakemake
prints a failed job's log (show-failed-logs), and a Ctrl-C printed ~130 lines, most of them the
Trainer's frames, although the interrupt was handled (checkpoint saved, the rerun resumes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# a job script: its log set up as every workflow script does, then the job ends with `raise`
JOB = """
import sys, types
from ablate import job_script
from ablate.core.execution.interrupts import TrainingInterrupted
job_script.log_only(
    types.SimpleNamespace(log=[sys.argv[1]], rule="finetune", wildcards={{}}, input=[], output=[])
)
print("step 5/200")
raise {}
"""
SAVED = "training stopped by SIGINT after step 6; checkpoint-6 is saved and a rerun resumes from it"


@pytest.mark.parametrize(
    "raised, last_line",
    [
        (f"TrainingInterrupted({SAVED!r})", f"[interrupt] TrainingInterrupted: {SAVED}"),
        (
            "KeyboardInterrupt",
            "[interrupt] KeyboardInterrupt: stopped at once; a rerun runs the job again",
        ),
        ("ValueError('a bug')", "ValueError: a bug"),
    ],
)
def test_an_interrupt_ends_the_job_log_in_one_line(tmp_path, raised, last_line):
    log = tmp_path / "job.log"
    r = subprocess.run(
        [sys.executable, "-c", JOB.format(raised), str(log)], capture_output=True, text=True
    )
    assert r.returncode != 0
    lines = log.read_text().splitlines()
    assert lines[-1] == last_line, lines
    if "Interrupt" in raised:
        assert lines == ["step 5/200", last_line]
    else:  # a bug keeps its traceback
        assert "Traceback (most recent call last):" in lines


def test_a_checkpoint_that_went_in_part_ends_the_job_log_in_one_line(tmp_path):
    """A training job stopped after a checkpoint that had gone into the run in part (its rerun
    starts fresh) printed a traceback for a message that says everything."""
    log = tmp_path / "job.log"
    raised = (
        "__import__('ablate.core.training.saving', fromlist=['saving'])"
        ".PartlyLoaded('checkpoints: rerun the job, which starts fresh')"
    )
    r = subprocess.run(
        [sys.executable, "-c", JOB.format(raised), str(log)], capture_output=True, text=True
    )
    assert r.returncode != 0
    assert log.read_text().splitlines() == [
        "step 5/200",
        "[error] PartlyLoaded: checkpoints: rerun the job, which starts fresh",
    ]


# the model registration of a hub model on a machine that cannot reach the hub (a port nothing
# listens on stands for a lost network: refused at once, as a failed DNS lookup is)
REGISTER = """
import sys, types
from ablate import job_script
job = dict(rule="register_model", wildcards={}, input=[], output=[], log=[sys.argv[1]])
job_script.log_only(types.SimpleNamespace(**job))
from ablate.core.outputs import model_card
model_card.register_pretrained(sys.argv[2], model="mistralai/Ministral-3-3B-Instruct-2512")
"""


def test_a_hub_the_job_cannot_reach_ends_its_log_in_one_line(tmp_path):
    """prepare_model of a hub model offline printed 40 lines of network frames (httpx, httpcore,
    huggingface_hub) before its one-line message: now that line alone."""
    log = tmp_path / "job.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    r = subprocess.run(
        [sys.executable, "-c", REGISTER, str(log), str(tmp_path / "card.json")],
        env={**env, "HF_ENDPOINT": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "[error] ModelCardError: cannot resolve model.path 'mistralai/Ministral-3-3B-Instruct-2512'"
    ), lines
    assert lines[0].endswith("point model.path to a local directory."), lines
