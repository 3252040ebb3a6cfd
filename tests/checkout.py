"""A user's checkout of this repository in a temporary folder, and the embedded default run in
one: the end-to-end tests (pipeline, planner, SLURM, Vast) share one finished run per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a checkout holds that a run needs: the workflow, the library (shipped to Vast instances;
# first on PYTHONPATH, so a run uses the copy's code) and the profile links at the root.
CHECKOUT = (
    "Snakefile",
    "rules",
    "workflow",
    "config",
    "profiles",
    "environment.yml",
    "src",
    "pyproject.toml",
    ".gitignore",
    "slurm",
    "vast",
)


#: A dry run of a config whose jobs ask for GPUs, as on the GPU host the config is made for: the
#: GPU pool (ablate.core.execution.gpus, ABLATE_GPU_IDS) holds a device, so the parse-time preflight
#: (ablate.core.execution.preflight) plans it on a machine without one, as it does under --profile
#:slurm.
GPU_HOST = {"ABLATE_GPU_IDS": "0"}


def copy_checkout(dst: Path, source: Path = ROOT) -> Path:
    """A user's checkout (the files a run needs) of `source` in dst."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in CHECKOUT:
        src = source / name
        if src.is_symlink():
            (dst / name).symlink_to(os.readlink(src))
        elif src.is_dir():
            shutil.copytree(
                src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(src, dst / name)
    return dst


def snakemake(
    wd: Path, *args: str, timeout: int = 1500, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m snakemake ARGS` in wd, with wd's own src/ first on PYTHONPATH when it has one
    (forked from a server that imported Snakemake once: tests/forked_snakemake.py)."""
    import forked_snakemake

    own = {"PYTHONPATH": str(wd / "src")} if (wd / "src").is_dir() else {}
    return forked_snakemake.snakemake(wd, args, {**os.environ, **own, **(env or {})}, timeout)


def run_embedded_default(wd: Path, *args: str) -> Path:
    """`snakemake -c2 ARGS` (every default target; no ARGS: the embedded default) in a fresh
    checkout at wd; asserts success."""
    import pandas as pd

    copy_checkout(wd)
    started = time.time()
    r = snakemake(wd, "-c2", *args, timeout=2400)
    wall = time.time() - started
    (wd / "run.log").write_text(r.stdout + r.stderr)
    assert r.returncode == 0, (r.stdout + r.stderr)[-8000:]
    print(
        f"\n{' '.join(args) or 'embedded default'}: pipeline wall time {wall:.0f} s; per job (s):"
    )
    for b in sorted(p for p in (wd / "results").rglob("*.tsv") if "benchmarks" in p.parts):
        s = pd.read_csv(b, sep="\t")["s"].iloc[0]
        print(f"  {b.relative_to(wd / 'results')}: {s:.1f}")
    return wd


#: The bridge study alone: the default config with only the bridge study's targets.
BRIDGE_ARGS = ("--config", "studies=[bridge]")


def run_cache_folder() -> str:
    """The run cache's folder in a checkout (the config key's default, relative)."""
    from ablate.core.config import config_schema

    return config_schema()["properties"]["run_cache"]["default"]


def copy_cache_entries(src: Path, dst: Path, keep: Callable[[dict], bool] | None = None) -> None:
    """The run cache entries of the finished run src (those whose manifest's `parts`, the rule and
    its wildcards among them, `keep` accepts, when given) copied into the checkout dst's run cache
    (the default folder of both), as a second clone sharing the cache holds them. An entry dst has
    already is kept; one whose key no longer matches (the tree changed between the two copies) is
    simply not restored: the job runs."""
    import json

    from ablate.core.reruns import runcache

    folder = run_cache_folder()
    for manifest in (src / folder).glob(f"*/{runcache.MANIFEST}"):
        entry = dst / folder / manifest.parent.name
        if not entry.exists() and (keep is None or keep(json.loads(manifest.read_text())["parts"])):
            shutil.copytree(manifest.parent, entry)


def ablate_cli(wd: Path, *args: str) -> str:
    """`python -m ablate.cli ARGS` in wd with wd's own src/ first; asserts success; its output."""
    r = subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=wd,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONPATH": str(wd / "src")},
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    return r.stdout + r.stderr


#: The session fixture of the longest chain: the embedded run, then the experiments loop on it
#: (minutes each), then the tests that read the loop. Its tests are one xdist group, the first
#: handed out, so the chain starts at once (`experiments_loop`, tests/conftest.py, is made once
#: per worker).
CHAIN_FIXTURE, CHAIN_GROUP = "experiments_loop", "embedded"

#: The finetune key the experiments loop (`run_experiments_loop`) changes.
LOOP_KEY = "mask.finetune.variants.3A.learning_rate"


def run_experiments_loop(wd: Path) -> dict[str, str]:
    """The loop a researcher takes on the finished quick start in wd (asserted step by step in
    tests/pipeline/test_experiments_run.py): an experiment with one finetune key changed, a sweep
    of two values (one of them the experiment's: restored), the table, a diff, an edit in place
    and its revert, a seed added to 3A. The guide's own sweep (three values) and seeds (3B's, which
    5B extends: twice the jobs) are dry runs in the README test: each job more here is minutes on
    the suite's longest chain. Step -> what it printed."""
    steps = {}
    steps["lr"] = ablate_cli(wd, "exp", "run", "lr", "--set", f"{LOOP_KEY}=5.0e-4")
    steps["sweep"] = ablate_cli(wd, "exp", "run", "sweep", "--set", f"{LOOP_KEY}=5.0e-4,2.0e-3")
    steps["runs"] = ablate_cli(
        wd, "runs", "--md", "runs.md", "--sort", "mask: 3A under prefill_bidir"
    )
    steps["diff"] = ablate_cli(
        wd,
        "diff",
        "results/eval/3A/causal/metrics.json",
        "results/exp/lr/eval/3A/causal/metrics.json",
    )
    steps["seeds"] = ablate_cli(
        wd, "exp", "run", "seeds", "--set", "mask.finetune.variants.3A.seeds=[5, 6]"
    )
    return steps
