"""The GPU smoke DAG on a multi-GPU host with --resources gpu=N: which job ran on which GPU.

Runs config/ministral3b-smoke.yaml (the real 3.43 B shape, random init, the embedded data and
tasks: no hub, no model path) through `snakemake --resources gpu=N` in a copy of this checkout
under --work (outside the folder the device tool replaces), while a sampler writes
`nvidia-smi -L` and `nvidia-smi --query-compute-apps=pid,gpu_uuid,used_memory --format=csv`
every 2 s to <work>/nvidia_smi.log. Then prints one row per GPU job: the devices the pool gave it
(the `[gpus] ...: CUDA_VISIBLE_DEVICES=...` line of its log, with its pid), the GPUs nvidia-smi saw
its pid on (index and peak MiB), its Snakemake benchmark wall time, and which jobs overlapped in
time on different GPUs. Exit status 1 if a job's pid was seen on a GPU it was not given.

    PYTHONPATH=<site>:src python bench/tools/gpu_pool_smoke.py [--gpus 2] [--cores 32] [--work /tmp/gpu_pool_smoke]

Offline host: install the carried wheels as /work/shared/reference/gpu_rehearsal/README.md says
(snakemake, transformers, mistral-common, ...); the Tekken tokenizer comes from mistral-common.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLAIM = re.compile(
    r"\[gpus\] (?P<label>.+): CUDA_VISIBLE_DEVICES='(?P<ids>[^']*)' \(pid (?P<pid>\d+)"
    r"(?:.*?waited (?P<waited>[\d.]+) s)?"
)


def sample(out: Path, stop: threading.Event, every_s: float = 2.0) -> None:
    query = ["nvidia-smi", "--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv"]
    with out.open("w") as f:
        while not stop.is_set():
            f.write(f"# t={time.time():.1f}\n")
            for cmd in (["nvidia-smi", "-L"], query):
                r = subprocess.run(cmd, capture_output=True, text=True)
                f.write(r.stdout)
            f.flush()
            stop.wait(every_s)


def parse_samples(path: Path) -> tuple[dict[str, str], dict[int, dict[str, int]]]:
    """(uuid -> GPU index, pid -> {GPU index: peak MiB}) from the sampler's file."""
    index, seen = {}, {}
    for line in path.read_text().splitlines():
        m = re.match(r"GPU (\d+): .*\(UUID: (GPU-[0-9a-f-]+)\)", line)
        if m:
            index[m.group(2)] = m.group(1)
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[0].isdigit():
            pid, uuid, mib = int(parts[0]), parts[1], int(parts[2].split()[0])
            gpu = index.get(uuid, uuid)
            seen.setdefault(pid, {})
            seen[pid][gpu] = max(seen[pid].get(gpu, 0), mib)
    return index, seen


def jobs(work: Path) -> list[dict]:
    """One record per job log that claimed devices, with its benchmark wall time."""
    out = []
    results = work / "results" / "smoke"
    for log in sorted((results / "logs").rglob("*.log")):
        m = CLAIM.search(log.read_text(errors="replace"))
        if not m:
            continue
        bench = results / "benchmarks" / log.relative_to(results / "logs").with_suffix(".tsv")
        wall = None
        if bench.exists():
            wall = float(bench.read_text().splitlines()[1].split("\t")[0])
        end = log.stat().st_mtime
        out.append(
            dict(
                job=str(log.relative_to(results / "logs").with_suffix("")),
                ids=[i for i in m["ids"].split(",") if i],
                pid=int(m["pid"]),
                waited=float(m["waited"]) if m["waited"] else None,
                wall=wall,
                start=end - (wall or 0),
                end=end,
            )
        )
    return out


def report(work: Path) -> int:
    _, seen = parse_samples(work / "nvidia_smi.log")
    rows, bad = jobs(work), 0
    print(
        "\n| job | given CUDA_VISIBLE_DEVICES | pid | nvidia-smi saw it on (peak MiB) | wall s "
        "| waited for it s | overlapped on another GPU with |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        on = seen.get(r["pid"], {})
        if set(on) - set(r["ids"]):
            bad += 1
        both = [
            o["job"]
            for o in rows
            if o is not r
            and o["start"] < r["end"]
            and r["start"] < o["end"]
            and o["ids"]
            and not set(o["ids"]) & set(r["ids"])
        ]
        print(
            f"| {r['job']} | {','.join(r['ids']) or '(none)'} | {r['pid']} | "
            f"{', '.join(f'GPU {g} ({m})' for g, m in sorted(on.items())) or '-'} | "
            f"{r['wall'] if r['wall'] is not None else '-'} | "
            f"{r['waited'] if r['waited'] is not None else '-'} | {', '.join(both) or '-'} |"
        )
    print(f"\n{len(rows)} GPU jobs; {bad} seen on a GPU they were not given")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--gpus",
        type=int,
        default=2,
        help="--resources gpu=N (above the host's GPUs: a job waits for a device with its "
        "libraries loaded, docs/profiles.md)",
    )
    ap.add_argument("--cores", type=int, default=32)
    ap.add_argument("--work", default="/tmp/gpu_pool_smoke", help="the run's folder (a copy)")
    ap.add_argument("--report-only", action="store_true", help="print the table of a run in --work")
    args = ap.parse_args(argv)
    work = Path(args.work)
    if args.report_only:
        return report(work)
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".git", "results", ".snakemake"))
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(work / "nvidia_smi.log", stop), daemon=True)
    sampler.start()
    # the target before --configfile, which takes every word after it as a config file
    cmd = [sys.executable, "-m", "snakemake", "results/smoke/recovery.csv", "--cores",
           str(args.cores), "--resources", f"gpu={args.gpus}",
           "--configfile", "config/ministral3b-smoke.yaml"]  # fmt: skip
    t0 = time.time()
    rc = subprocess.run(cmd, cwd=work).returncode
    stop.set()
    sampler.join()
    print(f"\nsnakemake exit {rc} after {time.time() - t0:.0f} s ({' '.join(cmd[1:])})")
    return rc or report(work)


if __name__ == "__main__":
    sys.exit(main())
