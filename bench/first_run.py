"""The first run of the embedded default (both studies, ``snakemake -c2``) timed in fresh copies
of git revisions, one after another on this machine: wall, user and system seconds, the jobs'
summed wall, the slowest jobs, and whether the result tables equal the first revision's.

    python bench/first_run.py 3f7f835 HEAD     # prints a markdown table; 4-8 min a revision

Each copy is a git worktree run with its own ``src`` first on PYTHONPATH, so each revision runs
its own package. The run is bound by its 2 cores: time it on an idle machine (``uptime``).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from ablate.core.outputs import provenance, records

ROOT = Path(__file__).resolve().parents[1]
#: the result tables compared between revisions, and their columns that name or time a run
TABLES = ["recovery.csv", "claims/mask.csv", "bridge/summary.csv", "bridge/claims.csv"]
RUN_COLUMNS = ("run_id", "train_run_id", "inputs", "wall_s", "benchmark_s")


def cpu() -> str:
    """The CPU's model and whether it has AVX-512 (CPU times differ ~2x with it)."""
    info = provenance.cpu_info()
    avx512 = (info["cpu_flags"] or {}).get("avx512f")
    has = "unknown" if avx512 is None else "with" if avx512 else "without"
    return f"{info['cpu_model']}, {has} AVX-512"


def run(rev: str, cores: int) -> tuple[dict, pd.DataFrame, Path]:
    """One first run of ``rev`` in a new worktree: its times, its jobs' times, its folder."""
    where = Path(tempfile.mkdtemp(prefix="first_run_")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(where), rev],
                   check=True)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(where / "src")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(["snakemake", f"-c{cores}", "-q"], cwd=where, env=env,
                         capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        sys.exit(f"{rev}: snakemake failed\n{out.stderr[-3000:]}")
    folder = where / "results/benchmarks"
    jobs = pd.DataFrame(
        [{"job": str(p.relative_to(folder).with_suffix("")), "s": records.benchmark_seconds(p)}
         for p in folder.rglob("*.tsv")]
    )  # fmt: skip
    times = {
        "wall_s": wall,
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "jobs_s": jobs["s"].sum(),
    }
    return times, jobs.sort_values("s", ascending=False), where


def same_results(a: Path, b: Path) -> bool:
    """The result tables of two runs equal, columns that name or time a run aside."""
    for name in TABLES:
        x, y = pd.read_csv(a / "results" / name), pd.read_csv(b / "results" / name)
        keep = [c for c in x.columns if c not in RUN_COLUMNS]
        if list(x.columns) != list(y.columns) or not x[keep].equals(y[keep]):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("revs", nargs="+", help="git revisions, the first the reference")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--top", type=int, default=6, help="slowest jobs listed per revision")
    ap.add_argument(
        "--keep", action="store_true", help="keep the runs' trees (their paths printed)"
    )
    args = ap.parse_args(argv)
    rows, trees, load = [], [], os.getloadavg()[0]
    try:
        for rev in args.revs:
            times, jobs, where = run(rev, args.cores)
            trees.append(where)
            sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev],
                                 capture_output=True, text=True).stdout.strip()  # fmt: skip
            slow = ", ".join(f"{j} {s:.1f}" for j, s in jobs.head(args.top).values)
            rows.append({"revision": f"{rev} ({sha})", **{k: round(v, 1) for k, v in times.items()},
                         "results = first": same_results(trees[0], where), "slowest jobs (s)": slow})  # fmt: skip
    finally:
        for where in trees:
            if args.keep:
                print(f"kept: {where}")
            else:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)]
                )
    print(f"`snakemake -c{args.cores}`, embedded default, both studies; {cpu()}, "
          f"{os.cpu_count()} cores, load average before {load:.2f}\n")  # fmt: skip
    print(pd.DataFrame(rows).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
