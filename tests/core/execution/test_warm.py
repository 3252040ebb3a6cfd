"""Warm job starts (ablate.core.execution.warm): a job handed to its run's server runs as its own
process would (its streams, folder, environment, arguments, exit status, the signals it gets,
the same bytes computed), the first job of a key runs cold and starts the server, a job not
under the run's process runs cold, and a server stops with its run. A whole embedded run warm
and cold: bench/results/warm_jobs_cpu.md; every pipeline test runs its jobs warm."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from helpers import sigint_at_default

from ablate.core.execution import warm

SRC = Path(warm.__file__).resolve().parents[3]

#: A job script's shape: hand off, then say whether torch came loaded, what it was given, and
#: compute a few bytes with torch (a warm job must compute what a cold one does).
SCRIPT = """\
import os, sys, time
from ablate.core.execution import warm
how = warm.hand_off()
os.environ["A_JOB_OWN_VARIABLE"] = sys.argv[1]  # as a job's start sets its own (upstream runs)
if warm.start_for_next_jobs():
    how += "; it starts one for the next jobs"
started = "warm" if "torch" in sys.modules else "cold"
import torch
torch.manual_seed(0)
x = torch.randn(64, 64)
print(started, os.getcwd(), os.environ.get("JOB_X"), sys.argv[1:], os.getpid(), flush=True)
print((x @ x).sum().item(), torch.get_num_threads(), torch.initial_seed(), flush=True)
print(how, flush=True)
print("to stderr", file=sys.stderr, flush=True)
if sys.argv[1] == "sleep":
    time.sleep(60)
sys.exit(int(sys.argv[1]) if sys.argv[1].isdigit() else 0)
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run's warm folder owned by this test process (an ancestor of every job it starts),
    its server started by a first, cold job; stopped after the module."""
    folder = tmp_path_factory.mktemp("warm")
    script = folder / "job.py"
    script.write_text(SCRIPT)
    before = os.environ.get(warm.RUN_ENV)
    run_dir = Path(warm.start_run(os.getpid()))
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "JOB_X": "seen"}
    first = job(script, env, "0")
    deadline = time.time() + 120
    while not list(run_dir.glob("*.sock")):
        assert time.time() < deadline, [p.read_text() for p in run_dir.glob("*.log")]
        time.sleep(0.2)
    yield dict(script=script, env=env, dir=run_dir, first=first)
    warm.stop_run()
    if before is not None:
        os.environ[warm.RUN_ENV] = before


def job(script: Path, env: dict, arg: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), arg],
        env=env,
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def started(script: Path, env: dict, arg: str) -> tuple[subprocess.Popen, list[str]]:
    """A job left running: its process and its first line's words (once it printed it). SIGINT
    at its default, as Snakemake's jobs have it (helpers.sigint_at_default)."""
    with sigint_at_default():
        proc = subprocess.Popen(
            [sys.executable, str(script), arg],
            env=env,
            cwd=script.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    return proc, proc.stdout.readline().split()


def test_the_first_job_runs_cold_and_the_next_warm_alike(run):
    first, then = run["first"], job(run["script"], run["env"], "3")
    assert first.returncode == 0 and first.stdout.startswith("cold"), first.stderr
    assert then.returncode == 3, then.stderr
    words = then.stdout.split()
    assert words[:5] == ["warm", str(run["script"].parent), "seen", "['3']", words[4]]
    assert then.stderr == "to stderr\n"
    # the same bytes from torch, the same thread count and seed as in a cold process
    assert then.stdout.splitlines()[1] == first.stdout.splitlines()[1]
    # what each job's log says of its start
    assert first.stdout.splitlines()[2].startswith("started cold: no warm server for its environ")
    assert first.stdout.splitlines()[2].endswith("; it starts one for the next jobs")
    assert then.stdout.splitlines()[2].startswith("started warm: forked from the run's server")


def test_a_job_is_its_own_process_whose_signals_reach_it(run):
    for sig, code in ((signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)):
        proc, words = started(run["script"], run["env"], "sleep")
        assert words[0] == "warm", proc.stderr.read()
        child = int(words[4])
        assert child != proc.pid and psutil.pid_exists(child)
        proc.send_signal(sig)
        assert proc.wait(30) == code  # ends as the job ended: killed by that signal
        assert not alive_soon(child)
        if sig == signal.SIGINT:  # an uncaught KeyboardInterrupt, as a cold job prints it
            assert "KeyboardInterrupt" in proc.stderr.read()


def test_a_job_killed_outright_takes_its_child_along(run):
    proc, words = started(run["script"], run["env"], "sleep")
    assert words[0] == "warm"
    proc.kill()
    proc.wait(30)
    assert not alive_soon(int(words[4]))


def test_another_environment_or_a_job_outside_the_run_runs_cold(run):
    other, words = started(run["script"], {**run["env"], "OMP_NUM_THREADS": "2"}, "sleep")
    assert words[0] == "cold"  # its key has no server (one starts for the next)
    # the server it started is no process of the job's (the job's benchmark measures it alone)
    assert psutil.Process(other.pid).children(recursive=True) == []
    other.kill()
    other.wait(30)
    again = job(run["script"], {**run["env"], "OMP_NUM_THREADS": "2"}, "0")
    if again.stdout.startswith("cold"):  # that server is still importing: the line says so
        assert again.stdout.splitlines()[2].startswith("started cold: no warm server")
        assert "it starts one" not in again.stdout  # one is starting already
    outside = {k: v for k, v in run["env"].items()}
    outside[warm.RUN_ENV] = str(run["dir"].with_name("1"))  # a run this job is not under
    assert job(run["script"], outside, "0").stdout.startswith("cold")
    off = {**run["env"], warm.RUN_ENV: ""}
    lines = job(run["script"], off, "0").stdout.splitlines()
    assert lines[0].startswith("cold") and lines[2] == "None"  # no run: its log says nothing


def test_the_switch_off_names_no_folder(monkeypatch):
    monkeypatch.setenv(warm.SWITCH_ENV, "0")
    assert warm.start_run(os.getpid()) is None


def test_a_server_stops_once_its_run_is_gone(tmp_path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "s.sock"))
    listener.listen()
    gone = subprocess.Popen(["true"])
    gone.wait()
    t0 = time.monotonic()
    warm.loop(listener, gone.pid)  # returns: no job runs and its run's process is gone
    assert time.monotonic() - t0 < 5


def alive_soon(pid: int, within: float = 5.0) -> bool:
    """Whether ``pid`` still runs after ``within`` seconds (a zombie counts as ended)."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        time.sleep(0.05)
    return True


def test_a_folder_left_by_a_killed_run_of_the_same_pid_is_emptied(monkeypatch):
    monkeypatch.delenv(warm.RUN_ENV, raising=False)  # restored after: the module's run keeps its
    pid = 4_000_000 + os.getpid()  # above any pid the kernel gives (pid_max <= 2**22)
    left = Path(f"/tmp/ablate-warm-{os.getuid()}") / str(pid)
    left.mkdir(parents=True, exist_ok=True)
    (left / "0123.pid").write_text("1")  # would keep the run from starting its server
    assert warm.start_run(pid) == str(left) and list(left.iterdir()) == []
    warm.stop_run()
    assert not left.exists()


def test_a_signal_before_the_childs_pid_reaches_it_once_known():
    ours, theirs = socket.socketpair()
    child = subprocess.Popen(["sleep", "60"])
    handlers = {s: signal.getsignal(s) for s in warm.FORWARDED}

    def server():  # the job's process is signalled before the server's "pid" line reaches it
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.3)
        theirs.sendall(f"pid {child.pid}\n".encode())
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:  # the signal never reached it
            pass
        theirs.sendall(b"exit 7\n")

    thread = threading.Thread(target=server)
    thread.start()
    try:
        assert warm.wait_for_child(ours, []) == 7
    finally:
        thread.join()
        for s, h in handlers.items():
            signal.signal(s, h)
    assert child.poll() == -signal.SIGUSR1
    child.kill()
