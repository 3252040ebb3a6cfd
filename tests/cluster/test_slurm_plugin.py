"""The pinned SLURM plugin's workarounds (src/snakemake_executor_plugin_ablate_slurm): the stock
plugin asks the controller for its config when imported, which Snakemake does at every start, so
it is an extra; `--profile slurm` without a controller stops at once in one line. Fast, no root:
no controller runs (a slurm.conf naming one that does not answer)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib

import pytest
from conftest import CLEAN_ENV, ROOT, SNAKEMAKE, copy_checkout

from snakemake_executor_plugin_ablate_slurm import PLUGIN_VERSION, STOCK

#: a slurm.conf whose controller does not answer: nothing listens on its port
NO_CONTROLLER = """\
ClusterName=nocontroller
SlurmctldHost=localhost
SlurmctldPort=6899
AuthType=auth/munge
NodeName=localhost CPUs=1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES State=UP
"""


def fake_slurm_client(bin_dir, record):
    """sinfo, sacct, squeue and an scontrol that notes its arguments, then takes 2 s."""
    bin_dir.mkdir()
    for tool in ("sinfo", "sacct", "squeue"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {record}\nsleep 2\nexit 1\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)


def test_stock_plugin_asks_the_controller_when_imported(tmp_path):
    """The upstream behaviour: importing the pinned stock plugin (Snakemake imports every
    installed executor plugin at every start) runs `scontrol show config`, and waits for it."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from importlib.metadata import version

    assert version(STOCK) == PLUGIN_VERSION
    record = tmp_path / "scontrol.calls"
    fake_slurm_client(tmp_path / "bin", record)
    env = {**CLEAN_ENV, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import snakemake_executor_plugin_slurm"], env=env, check=True
    )
    assert time.monotonic() - started >= 2
    assert "show config" in record.read_text()


def test_the_stock_plugin_is_an_extra_of_the_pinned_version():
    """Workaround 1: an install without the extra never imports it, so never waits for SLURM."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith(STOCK)]
    assert project["optional-dependencies"]["slurm"] == [f"{STOCK}=={PLUGIN_VERSION}"]
    assert "ablate[slurm]" in project["optional-dependencies"]["test"]


def test_without_the_extra_the_profile_says_what_to_install():
    """An install without the extra: the shim registers a stand-in whose settings are the
    profile's (its command line parses) and whose start names the install command."""
    code = """
import sys
sys.modules["snakemake_executor_plugin_slurm"] = None  # not installed
import snakemake_executor_plugin_ablate_slurm as shim
from dataclasses import fields
print(sorted(f.name for f in fields(shim.ExecutorSettings)))
try:
    shim.Executor.__post_init__(None)
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == "['init_seconds_before_status_checks', 'keep_successful_logs']"
    assert lines[1].startswith("WorkflowError executor ablate-slurm (--profile slurm) needs ")
    assert lines[1].endswith("pip install -e '.[slurm]'"), lines[1]


@pytest.mark.skipif(not shutil.which("scontrol"), reason="no SLURM client (scontrol)")
def test_profile_without_a_controller_stops_at_once_in_one_line(tmp_path):
    """Workaround 2: the stock executor waited on the controller at its start, then for each
    sbatch, sacct and scancel (12.5 min, deaf to SIGINT and SIGTERM); now `scontrol ping` first."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    wd = copy_checkout(tmp_path / "checkout")
    conf = tmp_path / "slurm.conf"
    conf.write_text(NO_CONTROLLER)
    env = {**CLEAN_ENV, "SLURM_CONF": str(conf), "PYTHONPATH": str(wd / "src")}
    started = time.monotonic()
    try:
        r = subprocess.run(
            [SNAKEMAKE, "--profile", "slurm", "results/model/base.json"],
            cwd=wd,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("--profile slurm without a controller ran over 150 s")
    took = time.monotonic() - started
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    line = next((x for x in out.splitlines() if "no SLURM controller answers" in x), None)
    assert line and line.startswith("--profile slurm: "), out[-3000:]
    assert f"config {conf}" in line and "SLURM_CONF" in line, line
    assert "sbatch" not in out and "Unable to guess SLURM account" not in out, out[-3000:]
    assert took < 90, took


def test_status_rounds_are_the_profiles_interval_not_the_stock_back_off(monkeypatch):
    """Workaround 3: the stock executor set its own interval after each status round (the init
    wait, +10 s a round without a finished job, up to 180 s), so a finished job was seen up to
    3 min late and `--seconds-between-status-checks` did nothing. Now Snakemake's wait between
    two rounds is that setting, whatever the stock sets."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    import asyncio
    import inspect
    from types import SimpleNamespace

    import snakemake_executor_plugin_slurm as stock

    from snakemake_executor_plugin_ablate_slurm import Executor

    back_off = "self.next_seconds_between_status_checks = min("  # the upstream behaviour
    assert back_off in inspect.getsource(stock.Executor.check_active_jobs)
    executor = Executor.__new__(Executor)
    executor.workflow = SimpleNamespace(
        remote_execution_settings=SimpleNamespace(seconds_between_status_checks=2)
    )
    executor.next_seconds_between_status_checks = 180  # as the stock's round sets it
    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    asyncio.run(executor.sleep())  # the interface's wait between two rounds
    assert slept == [2]


def test_no_pause_before_each_sbatch(monkeypatch):
    """Workaround 4: the stock executor slept 5 s before every sbatch (no setting), so each
    round of ready jobs waited 5 s per job and submission thread. Once the executor has started,
    the stock module's sleep returns at once; its other clocks are the time module's."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    import inspect

    import snakemake_executor_plugin_slurm as stock

    import snakemake_executor_plugin_ablate_slurm as shim

    assert "time.sleep(5)" in inspect.getsource(stock.Executor.run_job)  # the upstream behaviour
    monkeypatch.setattr(stock, "time", stock.time)  # the module's own again after this test
    monkeypatch.setattr(stock.Executor, "__post_init__", lambda self, test_mode=False: None)
    monkeypatch.setattr(shim, "controller_error", lambda: None)  # no controller here
    shim.Executor.__new__(shim.Executor).__post_init__()
    started = time.monotonic()
    stock.time.sleep(5)
    assert time.monotonic() - started < 1
    assert abs(stock.time.time() - time.time()) < 1
