"""One running Snakemake per results folder (ablate.core.trees.results_lock): two runs on
one folder from two working directories took over each other's checkpoints, since Snakemake
locks only its working directory. The library's lock, then the Snakefile's use of it: a second
run stops in one line before any job, a dry run takes no lock, `ablate status` names the
holder, a dead holder's lock is taken over and a finished run gives the lock back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from checkout import copy_checkout, snakemake
from helpers import DEEP_JSON

from ablate.core.trees import results_lock

#: the mask study's first job alone: seconds, no torch model
TARGET = ("--config", "studies=[mask]", "--", "results/data/corpus.jsonl")


@pytest.fixture()
def sleeper():
    """A live process of this host, standing for another run's Snakemake."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


def hold(results: Path, pid: int, host: str | None = None, **keys) -> dict:
    """The lock file a run of process ``pid`` on ``host`` (default: this host) would write."""
    holder = {
        "pid": pid,
        "host": host or socket.gethostname(),
        "cwd": "/elsewhere/checkout",
        "since": "2025-01-01 10:00:00 +0000",
        "started": results_lock.start_time(pid),
        "command": "snakemake -c2",
        **keys,
    }
    results.mkdir(parents=True, exist_ok=True)
    results_lock.lock_path(results).write_text(json.dumps(holder))
    return holder


def test_a_held_folder_is_refused_naming_the_holder_and_the_fix(tmp_path, sleeper):
    results = tmp_path / "results"
    holder = hold(results, sleeper.pid)
    with pytest.raises(results_lock.ResultsLocked) as info:
        results_lock.acquire(results)
    message = str(info.value)
    assert message == (
        f"{results}/ is in use by another Snakemake run (pid {sleeper.pid} on "
        f"{socket.gethostname()}, working directory /elsewhere/checkout, since 2025-01-01 "
        "10:00:00 +0000): two runs on one results folder take over each other's checkpoints and "
        "records; wait until it ends (or stop it), or give this configuration its own `results:`"
    )
    assert results_lock.read(results) == holder  # untouched


def test_a_holder_on_another_host_is_refused_with_how_to_clear_it(tmp_path):
    results = tmp_path / "results"
    hold(results, 1, host="gpu-node-7")
    with pytest.raises(results_lock.ResultsLocked, match=r"pid 1 on gpu-node-7, .*; if that run "):
        results_lock.acquire(results)
    with pytest.raises(results_lock.ResultsLocked, match=f"delete {results}/.run.lock$"):
        results_lock.acquire(results)


@pytest.mark.parametrize("text", ["{not json", DEEP_JSON], ids=["not-json", "too-deep"])
def test_a_lock_that_reads_as_no_holder_is_refused(tmp_path, text):
    results = tmp_path / "results"
    results.mkdir()
    results_lock.lock_path(results).write_text(text)
    with pytest.raises(results_lock.ResultsLocked, match="pid \\? on \\?.*delete"):
        results_lock.acquire(results)


def test_a_dead_holders_lock_is_taken_over_and_released(tmp_path):
    results = tmp_path / "results"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    hold(results, int(dead.stdout), started="1")
    note = results_lock.acquire(results)
    assert note.startswith(f"{results}/: took over the lock of a run that ended without ")
    assert results_lock.is_ours(results_lock.read(results))
    assert results_lock.acquire(results) is None  # held by this process already
    results_lock.release(results)
    assert results_lock.read(results) is None
    assert sorted(p.name for p in results.iterdir()) == []  # no temporary file left


def test_a_reused_process_id_is_a_dead_holder(tmp_path, sleeper):
    """The holder's id now names another process (started at another time): stale."""
    results = tmp_path / "results"
    hold(results, sleeper.pid, started="12345")
    assert results_lock.running(results_lock.read(results)) is False
    assert "took over" in results_lock.acquire(results)
    results_lock.release(results)


def test_release_leaves_another_holders_lock(tmp_path, sleeper):
    results = tmp_path / "results"
    holder = hold(results, sleeper.pid)
    results_lock.release(results)
    assert results_lock.read(results) == holder


def test_status_line(tmp_path, sleeper):
    results = tmp_path / "results"
    assert results_lock.status_line(results) is None
    hold(results, sleeper.pid)
    assert results_lock.status_line(results).startswith(
        f"a Snakemake run holds {results}/: pid {sleeper.pid} on "
    )
    hold(results, 1, host="gpu-node-7")
    assert results_lock.status_line(results).endswith("(on another host: not checked from here)")
    # the run that asks (its status job, a child of the Snakemake holding the lock): no line
    hold(results, os.getppid())
    assert results_lock.status_line(results) is None


def test_an_experiments_tree_is_under_its_bases_lock(tmp_path, sleeper):
    """One lock covers a results tree and the experiment trees in it: a run holding results/
    writes its experiments' trees too, and an experiment's tree was locked on its own
    (results/exp/<name>/.run.lock), which a run of the base never looked at."""
    results, exp = tmp_path / "results", tmp_path / "results/exp/lr"
    holder = hold(results, sleeper.pid)
    with pytest.raises(results_lock.ResultsLocked, match=f"^{exp}/ is in use by another Snakemake"):
        results_lock.acquire(exp)
    assert results_lock.read(exp) == holder
    assert results_lock.status_line(exp).startswith(f"a Snakemake run holds {exp}/: pid ")
    assert not exp.exists()  # no lock of its own
    results_lock.lock_path(results).unlink()
    assert results_lock.acquire(exp) is None
    assert results_lock.is_ours(results_lock.read(results))  # the base's lock, held for both
    assert results_lock.acquire(results) is None
    results_lock.release(exp)
    assert results_lock.read(results) is None
    # a folder named exp/<name> with no base above it in the path is a folder of its own
    assert results_lock.lock_path("exp/lr") == Path("exp/lr/.run.lock")


def test_a_link_to_an_experiments_tree_is_under_its_bases_lock(tmp_path, monkeypatch, sleeper):
    """`results: lnk` with lnk -> results/exp/lr took a lock of its own (lnk/.run.lock, in the
    experiment's tree), which a run of the base never looks at: the lock is found where the
    link leads, the base's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results/exp/lr").mkdir(parents=True)
    Path("lnk").symlink_to("results/exp/lr")
    assert results_lock.lock_path("lnk") == Path("results/.run.lock")
    hold(tmp_path / "results", sleeper.pid)
    with pytest.raises(results_lock.ResultsLocked, match="^lnk/ is in use by another Snakemake"):
        results_lock.acquire("lnk")
    assert not (tmp_path / "results/exp/lr/.run.lock").exists()


# ------------------------------------------------------------------ through Snakemake


def test_the_delete_commands_refuse_a_folder_a_live_run_holds(tmp_path, sleeper):
    """`snakemake --delete-all-output` (and --delete-temp-output) from another working directory
    than the run holding results/ deleted its outputs under it: Snakemake's own lock is its
    working directory's, and a delete command runs no onstart. Now it takes the results
    folder's lock: refused in one line naming the holder, nothing deleted; with the folder
    free it deletes and gives the lock back."""
    wd = copy_checkout(tmp_path / "wd")
    corpus = wd / "results/data/corpus.jsonl"
    corpus.parent.mkdir(parents=True)
    corpus.write_text("{}\n")
    holder = hold(wd / "results", sleeper.pid)
    for flag in ("--delete-all-output", "--delete-temp-output"):
        r = snakemake(wd, flag, *TARGET, timeout=600)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert (
            f"results/ is in use by another Snakemake run (pid {sleeper.pid} on "
            f"{socket.gethostname()}, working directory /elsewhere/checkout, since 2025-01-01 "
            "10:00:00 +0000): deleting outputs now removes files that run writes and reads; wait "
            "until it ends (or stop it)"
        ) in out, out
        assert "Traceback" not in out, out
        assert corpus.exists() and results_lock.read(wd / "results") == holder
    r = snakemake(wd, "-n", "--delete-all-output", *TARGET, timeout=600)  # a dry run: no lock
    assert r.returncode == 0 and "Would delete results/data/corpus.jsonl" in r.stdout + r.stderr
    results_lock.lock_path(wd / "results").unlink()
    r = snakemake(wd, "--delete-all-output", *TARGET, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not corpus.exists() and not any((wd / "results").glob(".run.lock*"))


def test_a_second_run_on_a_held_folder_stops_before_any_job(tmp_path, sleeper, capsys):
    """Another working directory's run (a live process) holds results/: this run stops at its
    start in one line, runs no job and leaves the lock; a dry run takes no lock and plans as
    usual; `ablate status` names the holder."""
    from ablate.core.reports import status

    wd = copy_checkout(tmp_path / "wd")
    holder = hold(wd / "results", sleeper.pid)
    r = snakemake(wd, "-c1", *TARGET, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"results/ is in use by another Snakemake run (pid {sleeper.pid} on " in out, out
    assert "working directory /elsewhere/checkout, since 2025-01-01 10:00:00 +0000" in out, out
    assert not (wd / "results" / "data").exists() and not (wd / "results" / "logs").exists()
    assert results_lock.read(wd / "results") == holder
    r = snakemake(wd, "-n", *TARGET, timeout=600)
    assert r.returncode == 0 and "make_data" in r.stdout, r.stdout + r.stderr
    assert results_lock.read(wd / "results") == holder
    assert status.main(["--configfile", str(wd / "config/config.yaml"), "-d", str(wd)]) == 0
    assert (
        f"; a Snakemake run holds {wd}/results/: pid {sleeper.pid} on " in capsys.readouterr().out
    )


@pytest.mark.slow
def test_a_run_takes_over_a_dead_holders_lock_and_gives_it_back(tmp_path):
    wd = copy_checkout(tmp_path / "wd")
    hold(wd / "results", 999_999_999, started="1")
    r = snakemake(wd, "-c1", *TARGET, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert (
        "results/: took over the lock of a run that ended without releasing it (pid 999999999"
        in out
    )
    assert (wd / "results/data/corpus.jsonl").exists()
    assert results_lock.read(wd / "results") is None  # given back at the end
    assert not any(Path(wd / "results").glob(".run.lock*"))
