"""A job interrupted (Ctrl-C, SIGTERM) ends its log with one line, not a traceback: Snakemake
prints a failed job's log (show-failed-logs), and a Ctrl-C printed ~130 lines, most of them the
Trainer's frames, although the interrupt was handled (checkpoint saved, the rerun resumes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# a job script: its log set up as every workflow script does, then the job ends with `raise`
JOB = """
import sys, types
from ablate import job_script
from ablate.core.interrupts import TrainingInterrupted
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
