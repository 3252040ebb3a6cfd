"""Every job says what happened to it in one line, on the terminal (the job's own stderr, which
Snakemake's screen shows) and in its log (ablate.job_script): it ran (how long; resumed from
which checkpoint; stored in the run cache under which key) or was restored from the run cache
(the key, the run it came from). Before, a restore printed nothing on the terminal and a resume
was said only in the job's log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
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
        "from ablate.core import provenance\n"
        "from ablate.core.io import write_json\n"
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
