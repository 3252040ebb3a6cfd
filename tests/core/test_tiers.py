"""Plain `pytest` runs the fast tier (minutes, not the 26 min of the whole suite); `-m ""` runs the
whole suite, which CI runs; a test named by its id runs whatever its marks (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import ROOT

#: one slow test (it needs the embedded run) and nothing else: collecting it costs no run
SLOW_ONLY = "tests/pipeline/test_dry_run_stale_last.py"
SLOW_TEST = f"{SLOW_ONLY}::test_dry_run_after_an_edit_ends_with_the_stale_summary"


def collect(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_plain_pytest_is_the_fast_tier():
    r = collect(SLOW_ONLY)
    assert "1 deselected" in r.stdout, r.stdout + r.stderr
    assert SLOW_TEST not in r.stdout


def test_the_whole_suite_is_one_flag_away_and_named_tests_always_run():
    assert SLOW_TEST in collect("-m", "", SLOW_ONLY).stdout
    assert SLOW_TEST in collect(SLOW_TEST).stdout
    assert SLOW_TEST not in collect("-m", "not slow", SLOW_ONLY).stdout


def test_ci_runs_every_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert '-m pytest -m "" -n 2 --dist loadgroup' in ci


def test_cluster_tests_that_wait_for_the_embedded_run_go_last():
    """On the cluster group's worker every test that needs no embedded run comes before the first
    that does (tests/conftest.py, `_embedded_cluster_tests_last`), a module's split if need be:
    the SLURM run's setup waits for the other worker's embedded run, the fake Vast hosts' tests
    need not."""
    r = collect("-m", "", "tests/cluster/test_slurm.py", "tests/cluster/test_vast.py")
    ids = [line for line in r.stdout.splitlines() if "::" in line]
    reads_the_run = ["test_slurm.py::" in i or "test_literal_vast_command" in i for i in ids]
    assert ids and any(reads_the_run) and not all(reads_the_run), r.stdout + r.stderr
    assert reads_the_run == sorted(reads_the_run), ids
