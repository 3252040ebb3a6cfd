"""A dry run after a config edit ends with the `stale:` summary: Snakemake's job list before it
printed each changed job's whole parameter trees (49 KB, lines over 2,000 characters), which
scrolled the summary away. The workflow's logger (ablate.core.execution.terminal) prints no
parameter tree, and on a terminal no line over 300 characters; a pipe gets the job lists whole."""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys

import pytest

PLAIN_3A = "3A: {stage: 3, policy: causal}"
STALE = "stale: finetune 3A: mask.finetune.variants.3A.max_steps 200 -> 40"


def in_a_terminal(cmd: list[str], cwd, env: dict, timeout: float = 300) -> tuple[int, str]:
    """(exit status, what it printed) of cmd run on a pseudo-terminal, as a person runs it:
    stdout and stderr in the order the terminal shows them, colours taken out."""
    import pty
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out, deadline = bytearray(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([master], [], [], 1)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            out += data
        elif proc.poll() is not None and not select.select([master], [], [], 0.5)[0]:
            break
    else:
        proc.kill()
        pytest.fail(f"{cmd} ran over {timeout} s")
    os.close(master)
    proc.wait()
    text = out.decode(errors="replace").replace("\r\n", "\n")
    return proc.returncode, re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.slow
def test_dry_run_after_an_edit_ends_with_the_stale_summary(embedded_run, tmp_path):
    wd = tmp_path / "run"
    shutil.copytree(embedded_run, wd, symlinks=True)  # keeps mtimes: the finished run
    cfg = wd / "config" / "config.yaml"
    cfg.write_text(cfg.read_text().replace(PLAIN_3A, PLAIN_3A[:-1] + ", max_steps: 40}"))
    cmd = [sys.executable, "-m", "snakemake", "-n"]
    env = {**os.environ, "PYTHONPATH": str(wd / "src")}
    # on a terminal: the summary last, no line over 300 characters, a few KB in all
    code, shown = in_a_terminal(cmd, wd, env)
    assert code == 0, shown[-3000:]
    out = shown.rstrip().splitlines()
    assert out[-1] == STALE, out[-5:]
    assert sum(line.startswith("stale: ") for line in out) == 1
    longest = max(out, key=len)
    assert len(longest) <= 300, longest[:400]
    assert len(shown) < 16_000, len(shown)
    assert "Params have changed since last execution" in shown
    # to a pipe (a program reads the listing): the lists whole, the parameter trees still out
    r = subprocess.run(
        cmd,
        cwd=wd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:]
    piped = r.stdout.rstrip().splitlines()
    assert piped[-1] == STALE, piped[-5:]
    assert "Params have changed since last execution (the stale: lines name the keys)" in r.stdout
    assert "only_old" not in r.stdout and "'params': {" not in r.stdout
    assert max(map(len, piped)) > 300  # rule all's every input, for a program
