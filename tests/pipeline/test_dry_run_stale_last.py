"""A dry run after a config edit ends with the `stale:` summary: Snakemake's job list before it
prints each changed job's whole parameter trees (tens of KB), which scrolled the summary away."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

PLAIN_3A = "3A: {stage: 3, policy: causal}"


@pytest.mark.slow
def test_dry_run_after_an_edit_ends_with_the_stale_summary(embedded_run, tmp_path):
    wd = tmp_path / "run"
    shutil.copytree(embedded_run, wd, symlinks=True)  # keeps mtimes: the finished run
    cfg = wd / "config" / "config.yaml"
    cfg.write_text(cfg.read_text().replace(PLAIN_3A, PLAIN_3A[:-1] + ", max_steps: 40}"))
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n"],
        cwd=wd,
        env={**os.environ, "PYTHONPATH": str(wd / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:]
    out = r.stdout.rstrip().splitlines()
    assert "Params have changed since last execution" in r.stdout
    assert out[-1] == "stale: finetune 3A: mask.finetune.variants.3A.max_steps 200 -> 40", out[-5:]
    assert sum(line.startswith("stale: ") for line in out) == 1
