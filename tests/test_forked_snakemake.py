"""tests/forked_snakemake.py: a Snakemake command forked from the server is the command a fresh
`python -m snakemake` in the checkout is: it imports the project from the checkout's own src/
(not the server's), sees the environment it is given, and returns its exit status, stdout and
stderr, its atexit handlers run."""

from __future__ import annotations

import os

from checkout import copy_checkout, snakemake


def test_a_forked_command_is_the_checkouts_own(tmp_path):
    wd = copy_checkout(tmp_path / "wd")
    init = wd / "src" / "ablate" / "__init__.py"
    init.write_text(
        init.read_text() + '\nimport atexit, os, sys\nprint("project from", __file__, '
        'os.environ.get("FORKED_PROBE"), file=sys.stderr)\n'
        'atexit.register(print, "at exit", file=sys.stderr)\n'
    )
    ok = snakemake(wd, "-n", "-q", env={"FORKED_PROBE": "seen"})
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert f"project from {init} seen" in ok.stderr
    assert ok.stderr.rstrip().endswith(
        "at exit"
    )  # its atexit handlers ran (a dry run's stale lines)
    assert "FORKED_PROBE" not in os.environ  # the command's environment, not this process's

    bad = snakemake(wd, "-n", "no_such_target_of_the_workflow")
    assert bad.returncode == 1
    assert "no_such_target_of_the_workflow" in bad.stdout + bad.stderr
    assert f"project from {init} None" in bad.stderr
