"""Fixtures for the executor-profile tests: a real one-node SLURM cluster, a fake Vast.ai API with
sshd "instances", temporary copies of the workflow, and the local run of the embedded default
(the session's shared one) that the SLURM and Vast runs are compared with.

These fixtures need root (daemons, mknod, mount namespaces, /etc/slurm). Without root the tests
using them are skipped with that reason; with root a failure to start is an error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fake_vast  # noqa: E402
import slurm_local  # noqa: E402
from checkout import ROOT, copy_checkout  # noqa: E402,F401  (tests/checkout.py, shared)
from helpers import sigint_at_default  # noqa: E402


def pytest_configure(config):
    # before any test starts snakemake (each start runs `scontrol`): slurm_local.remove_stale_link,
    # once, in the session's main process (configured before its pytest-xdist workers start)
    if hasattr(config, "workerinput"):
        return
    if note := slurm_local.remove_stale_link():
        print(f"tests/cluster: {note}", file=sys.stderr)


# The console script of this interpreter's environment (CI runs `.venv/bin/python -m pytest`
# without .venv/bin on PATH).
SNAKEMAKE = (
    str(Path(sys.executable).parent / "snakemake")
    if (Path(sys.executable).parent / "snakemake").exists()
    else "snakemake"
)
# Snakemake must not see the tester's own settings.
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SNAKEMAKE_", "SBATCH_", "SLURM_", "VAST_"))
}


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip(
            "needs root: starts munged/slurmctld/slurmd, mknod fake GPUs, writes "
            "/etc/slurm/slurm.conf, runs sshd in mount+PID namespaces"
        )


def git_add_all(wd: Path) -> None:
    """A git repository with everything added: the Vast executor ships the git-tracked files
    (the index is enough, no commit)."""
    subprocess.run(["git", "init", "-q"], cwd=wd, check=True)
    subprocess.run(["git", "add", "-A"], cwd=wd, check=True)


def run_snakemake(
    wd: Path,
    *args: str,
    env: dict | None = None,
    timeout: float = 900,
    log_name: str = "snakemake.log",
) -> subprocess.CompletedProcess:
    """`snakemake ARGS` as a user types it (the console script, not `python -m`), in wd. A
    checkout's own src/ comes first on PYTHONPATH: the run uses that copy of the library.

    On timeout: SIGINT (Snakemake cancels its jobs), then SIGKILL, and the test fails."""
    log = wd / log_name
    own = {"PYTHONPATH": str(wd / "src")} if (wd / "src").is_dir() else {}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [SNAKEMAKE, *args],
            cwd=wd,
            env={**CLEAN_ENV, **own, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(proc)
            pytest.fail(
                f"snakemake {' '.join(args)} ran over {timeout} s; tail of {log}:\n"
                + log.read_text()[-4000:]
            )
    return subprocess.CompletedProcess(proc.args, proc.returncode, log.read_text(), "")


def stop_process(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGINT, then SIGKILL of its process group after `grace` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(
    check,
    what: str,
    timeout: float,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
    interval: float = 0.5,
):
    """Poll check() until truthy; fail at the timeout or when proc exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-4000:] if log else ""
            pytest.fail(f"snakemake exited ({proc.returncode}) while waiting for {what}:\n{tail}")
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


# ----------------------------------------------------------------------------- Vast helpers

# Test pace: look at running jobs every second instead of the profile's 10/15 s.
VAST_POLL = ("--ablate-vast-poll-seconds", "1", "--seconds-between-status-checks", "1")
STOCK = os.environ.get("ABLATE_TEST_VAST_EXECUTOR")
EXECUTOR = ("--executor", STOCK) if STOCK else ()


def minimal_checkout(tmp_path: Path) -> Path:
    """The minimal workflow as a git checkout, with `vast` -> the repository's vast profile."""
    wd = tmp_path / "wf"
    shutil.copytree(HERE / "minimal", wd)
    (wd / "vast").symlink_to(ROOT / "profiles" / "vast")
    git_add_all(wd)
    return wd


def start_snakemake(wd: Path, vast, *args: str) -> subprocess.Popen:
    """Snakemake as a terminal starts it: SIGINT at its default (helpers.sigint_at_default)."""
    log = open(wd / "snakemake.log", "w")
    with sigint_at_default():
        return subprocess.Popen(
            [SNAKEMAKE, "--profile", "vast", *VAST_POLL, *EXECUTOR, *args],
            cwd=wd,
            env={**CLEAN_ENV, **vast.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def api_calls(vast, method: str, fragment: str) -> list[dict]:
    return [c for c in vast.calls if c["method"] == method and fragment in c["path"]]


def destroyed(vast) -> set[int]:
    return {
        int(c["path"].rstrip("/").rsplit("/", 1)[1])
        for c in api_calls(vast, "DELETE", "/instances/")
    }


# ----------------------------------------------------------------------------- SLURM


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    need_root()
    root = tmp_path_factory.mktemp("slurm")
    try:
        state = slurm_local.start(root)
    except RuntimeError as e:  # a real SLURM install that is not ours: not ours to touch
        if "not ours" in str(e):
            pytest.skip(str(e))
        raise
    yield state
    slurm_local.stop(root)
    running = {n: p for n, p in state["pids"].items() if slurm_local.alive(p)}
    assert not running, f"daemons still running after stop: {running}"


# ----------------------------------------------------------------------------- Vast


@pytest.fixture(scope="session")
def remote_python(tmp_path_factory) -> Path:
    """The instances' bin/: `python`, `python3` run this interpreter, whose environment holds
    snakemake and the project's pinned requirements, as a prepared image would (the job's pip
    steps find everything installed: no network on the 'instance'). The library itself comes
    from the shipped src/ (first on PYTHONPATH), not from this checkout."""
    need_root()
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        slurm_local.apt_install(["openssh-server"])
    bin_dir = tmp_path_factory.mktemp("remote") / "bin"
    bin_dir.mkdir()
    for name in ("python", "python3"):
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        wrapper.chmod(0o755)
    return bin_dir


@pytest.fixture
def vast(tmp_path, remote_python):
    """A fresh fake Vast API; on teardown every instance still alive is killed (and reported)."""
    fake = fake_vast.FakeVast(
        tmp_path / "vast-state", remote_path=f"{remote_python}:/usr/local/bin:/usr/bin:/bin"
    ).start()
    fake.env = {"VAST_URL": fake.url, "VAST_API_KEY": fake_vast.API_KEY}
    yield fake
    leaked = fake.alive()
    fake.stop()
    assert not leaked, f"instances still alive after the test: {leaked}"


# ----------------------------------------------------------------------------- the embedded run


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory) -> Path:
    """The working tree as the session starts. Runs that are compared copy this one, so they run
    the same code and config even if the tree changes meanwhile."""
    return copy_checkout(tmp_path_factory.mktemp("snapshot"))


@pytest.fixture(scope="session")
def embedded_local(embedded_run) -> Path:
    """The embedded default run locally (the reference for executor runs): the session's one
    finished run (tests/conftest.py), shared with the pipeline and planner tests."""
    return embedded_run
