"""Every job says what happened to it in one line, on the terminal (the job's own stderr, which
Snakemake's screen shows) and in its log (ablate.job_script): it ran (how long; resumed from
which checkpoint; stored in the run cache under which key) or was restored from the run cache
(the key, the run it came from). Before, a restore printed nothing on the terminal and a resume
was said only in the job's log.

ablate.job_script.run_entry: the one launch of a job's entry point, in its process or in one
data-parallel process per GPU (both training job scripts: finetune.py, bridge_train.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from ablate import job_script
from ablate.core.execution import parallel

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())

# a job script as the workflow's are: its `snakemake` object, its start, its work
JOB = """
import json, sys, types
from pathlib import Path
from ablate import job_script
out, log, cache = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
smk = types.SimpleNamespace(
    rule="finetune", wildcards={{"variant": "3A"}}, params={{"finetune": {{"lr": 1}}}},
    input=[], output=[str(out)], log=[log], threads=1, resources=types.SimpleNamespace(),
    config=json.loads(sys.argv[4]) | {{"run_cache": cache or None}}, scriptdir=sys.argv[5],
)
{start}
print("training ...")
{work}
"""


def job(tmp_path: Path, work: str, start: str = "job_script.log_only(smk)", cache: str = ""):
    out, log = tmp_path / "summary.json", tmp_path / "job.log"
    script = JOB.format(start=start, work=work)
    args = [str(out), str(log), cache, json.dumps(CONFIG), str(ROOT / "workflow/scripts")]
    r = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=tmp_path
    )
    return r, log.read_text() if log.exists() else ""


WRITE = "out.write_text(json.dumps({'resumed_from_step': STEP}))"


def test_a_job_that_ran_says_so_on_the_terminal_and_in_its_log(tmp_path):
    r, log = job(tmp_path, WRITE.replace("STEP", "None"))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "[job] finetune 3A: ran in 0 s\n"
    assert log.splitlines() == ["training ...", "[job] finetune 3A: ran in 0 s"]


def test_a_resumed_job_names_its_checkpoint(tmp_path):
    r, _ = job(tmp_path, WRITE.replace("STEP", "82"))
    assert r.stderr == "[job] finetune 3A: ran in 0 s, resumed from checkpoint-82\n"


def test_a_failed_or_unfinished_job_says_nothing(tmp_path):
    r, _ = job(tmp_path, "raise ValueError('a bug')")
    assert r.returncode != 0 and r.stderr == ""
    (tmp_path / "again").mkdir()
    r, _ = job(tmp_path / "again", "pass")
    assert r.returncode == 0 and r.stderr == ""  # its output is missing: it did not finish


def test_a_restored_job_names_the_key_and_the_run(tmp_path):
    """The run cache's job: the first run stores (its key in the line), the second restores and
    says from which run, in one line on the terminal."""
    cache = str(tmp_path / "cache")
    start = "cache = job_script.start(smk, 'mask')"
    work = (
        "from ablate.core.outputs import provenance\n"
        "from ablate.core.outputs.io import write_json\n"
        "write_json(out, {'x': 1, 'provenance': {'run_id': 'run-1', 'config_hash': 'h'}})\n"
        "cache.store()"
    )
    r, _ = job(tmp_path, work, start, cache)
    assert r.returncode == 0, r.stderr
    assert (
        r.stderr.startswith("[job] finetune 3A: ran in ")
        and "stored in the run cache as " in r.stderr
    )
    key = r.stderr.split("stored in the run cache as ")[1].strip()
    r, log = job(tmp_path, work, start, cache)
    assert r.returncode == 0, r.stderr
    line = r.stderr.strip()
    assert line.startswith(
        f"[job] finetune 3A: restored from the run cache (key {key}: run run-1, stored "
    )
    assert "training ..." not in log and line in log


def test_a_job_that_missed_the_cache_names_the_cause_on_its_line(tmp_path):
    """Issue 82: a job that runs where the run cache holds an entry of it says on its one line,
    the one the terminal shows, what differs from the nearest entry (before, only its log said)."""
    cache = str(tmp_path / "cache")
    start = "cache = job_script.start(smk, 'mask')"
    work = (
        "from ablate.core.outputs.io import write_json\n"
        "write_json(out, {'x': 1, 'provenance': {'run_id': 'run-1', 'config_hash': 'h'}})\n"
        "cache.store()"
    )
    r, _ = job(tmp_path, work, start, cache)
    assert r.returncode == 0 and "missed" not in r.stderr, r.stderr  # no entry of it yet
    (tmp_path / "summary.json").unlink()
    r, log = job(tmp_path, work, "smk.params['finetune']['lr'] = 2\n" + start, cache)
    assert r.returncode == 0, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith("[job] finetune 3A: ran in ") and line in log
    assert "; missed: the nearest entry of this job (" in line
    assert line.endswith("differs in params finetune.lr 1 -> 2")


def test_a_job_of_the_trees_state_says_it_was_remade_and_why_not_ran(tmp_path):
    """STATUS and the plan are of the tree as it is now (every job's state, the run cache's
    entries, the benchmark files), not of their declared inputs: the run cache never restores
    them, and after a revert that restores every other job their line says what they did and why
    instead of "ran"."""
    start = "job_script.log_only(smk, remade='STATUS is every job state now')"
    r, log = job(tmp_path, WRITE.replace("STEP", "None"), start)
    assert r.returncode == 0, r.stderr
    line = (
        "[job] finetune 3A: remade in 0 s from the tree as it is now "
        "(never restored: STATUS is every job state now)"
    )
    assert r.stderr == line + "\n" and log.splitlines()[-1] == line


# ---------------------------------------------------------------- run_entry


def entry(x: int, reporters=()) -> dict:
    return {"x": x, "reporters": reporters}


def reporters(tag: str) -> tuple:
    return (tag,)


def granted(gpu: int | None) -> types.SimpleNamespace:
    resources = types.SimpleNamespace(**({} if gpu is None else {"gpu": gpu}))
    return types.SimpleNamespace(resources=resources, threads=4, rule="train")


@pytest.fixture
def launched(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(parallel, "launch", lambda *a, **kw: calls.append((a, kw)))
    return calls


REPORTERS = {"call": "test_job_script:reporters", "kwargs": {"tag": "tb"}}


@pytest.mark.parametrize("gpu", [None, 0, 1])
def test_one_gpu_or_none_runs_the_entry_here_with_its_reporters(gpu, launched):
    out = job_script.run_entry(granted(gpu), "test_job_script:entry", {"x": 3}, reporters=REPORTERS)
    assert out == {"x": 3, "reporters": ("tb",)} and not launched


def test_several_gpus_launch_one_process_each(launched):
    call, kwargs = "test_job_script:entry", {"x": 3}
    assert job_script.run_entry(granted(4), call, kwargs, reporters=REPORTERS) is None
    assert launched == [((call, kwargs, 4, 4), {"reporters": REPORTERS})]


def test_configured_processes_need_as_many_gpus(launched):
    call, kwargs = "test_job_script:entry", {"x": 3}
    with pytest.raises(RuntimeError, match=r"^bridge.resources.train.gpu asks 2 .* gpu=1.*gpu=2\)"):
        job_script.run_entry(
            granted(1), call, kwargs, processes=2, key="bridge.resources.train.gpu"
        )
    assert job_script.run_entry(granted(1), call, kwargs, processes=1)["x"] == 3
    job_script.run_entry(granted(2), call, kwargs, processes=2)
    assert [a[2] for a, _ in launched] == [2]
