"""A finetune on 1, 2 and 4 GPUs through `snakemake` at the real shape, and a sharded resume.

Runs config/ministral3b-smoke.yaml (3.43 B, random init, the embedded data: no hub) in a copy of
this checkout under --work: the 3A finetune (`results/smoke/finetune/3A/summary.json`, the base
model and leakage probe before it once) with `mask.resources.finetune.gpu: 1`, then again
(`--forcerun finetune`) with each of --gpus, keeping each summary. Then, with the largest of
--gpus and `save_steps: 10`, a run interrupted by SIGINT to snakemake once `checkpoint-10` is
complete (the job saves one more checkpoint as it stops), and its rerun, which must resume from
one of them (`resumed_from_step` >= 10). The settings go in an
overlay file after the smoke config (a finetune's `gpu` is a resource: a change reruns nothing,
hence --forcerun).

Prints per run: its GPUs, the job's wall time (Snakemake's benchmark file), the optimizer steps'
time (`phases` of summary.json), the recipe line of its log, the loss at each logged step and the
largest relative difference from the one-GPU run's; the resumed run against the uninterrupted run
of the same GPUs (every logged loss and the final eval loss).

    PYTHONPATH=<site>:src python bench/tools/multi_gpu_finetune.py [--gpus 2 4] [--cores 32]
        [--work /tmp/multi_gpu_finetune] [--out RESULT.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ablate.core import checkpoint_integrity

REPO = Path(__file__).resolve().parents[2]
CONFIG = "config/ministral3b-smoke.yaml"
RESULTS = Path("results/smoke")
TARGET = RESULTS / "finetune/3A/summary.json"
CHECKPOINTS = RESULTS / "finetune/3A/checkpoints"
SAVE_AT = 10


def snakemake(work: Path, overlay: dict, cores: int, gpus: int, *extra: str) -> subprocess.Popen:
    """`snakemake TARGET` with the overlay after the smoke config (started, not waited for)."""
    path = work / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    cmd = [sys.executable, "-m", "snakemake", str(TARGET), "--cores", str(cores),
           "--resources", f"gpu={gpus}", *extra,
           "--configfile", CONFIG, str(path.relative_to(work))]  # fmt: skip
    print("$", " ".join(cmd[1:]), flush=True)
    return subprocess.Popen(cmd, cwd=work)


def overlay(gpus: int, save_steps: int = 0) -> dict:
    return {
        "mask": {
            "resources": {"finetune": {"gpu": gpus}},
            "finetune": {"defaults": {"save_steps": save_steps}},
        }
    }


def record(work: Path, label: str, gpus: int) -> dict:
    """The finished finetune's summary, benchmark wall time and recipe line."""
    summary = json.loads((work / TARGET).read_text())
    bench = next((work / RESULTS / "benchmarks").rglob("finetune*3A*.tsv"), None)
    log = next((work / RESULTS / "logs").rglob("finetune*3A*.log"), None)
    recipe = (
        [ln for ln in log.read_text().splitlines() if "weights gathered per" in ln] if log else []
    )
    return dict(
        label=label,
        gpus=gpus,
        wall_s=float(bench.read_text().splitlines()[1].split("\t")[0]) if bench else None,
        steps_s=(summary.get("phases") or {}).get("train.steps"),
        resumed_from_step=summary.get("resumed_from_step"),
        recipe=recipe[0].split(": ", 1)[-1] if recipe else "one GPU: bf16 weights + fp32 masters",
        losses={e["step"]: e["loss"] for e in summary["curves"]["train"]},
        eval_losses={e["step"]: e["eval_loss"] for e in summary["curves"]["eval"]},
    )


def interrupt_after_checkpoint(proc: subprocess.Popen, work: Path, timeout_s: float) -> None:
    """SIGINT to snakemake once checkpoint-SAVE_AT is complete (its marker written last)."""
    done = work / CHECKPOINTS / f"checkpoint-{SAVE_AT}" / checkpoint_integrity.CHECKPOINT_MARKER
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < timeout_s:
        if done.exists():
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.5)
    proc.wait()


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(a)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--cores", type=int, default=32)
    ap.add_argument("--work", default="/tmp/multi_gpu_finetune", help="the run's folder (a copy)")
    ap.add_argument("--out", help="write the runs as JSON")
    args = ap.parse_args(argv)
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".git", "results", ".snakemake"))
    most = max(args.gpus)
    runs = []
    for i, gpus in enumerate([1, *args.gpus]):
        extra = ("--forcerun", "finetune") if i else ()
        if snakemake(work, overlay(gpus), args.cores, most, *extra).wait():
            return 1
        runs.append(record(work, f"gpu {gpus}", gpus))
    # a sharded run that saves, interrupted after its checkpoint, and resumed
    interrupt_after_checkpoint(snakemake(work, overlay(most, SAVE_AT), args.cores, most), work, 900)
    if snakemake(work, overlay(most, SAVE_AT), args.cores, most).wait():
        return 1
    resumed = record(work, f"gpu {most}, interrupted after checkpoint-{SAVE_AT}, rerun", most)
    runs.append(resumed)
    one = runs[0]
    print("\n| run | recipe | job wall s | optimizer steps s | loss at each logged step "
          "| max rel. diff from gpu 1 |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in runs:
        diff = max(rel(one["losses"][s], x) for s, x in r["losses"].items())
        r["loss_rel_diff_vs_1"] = diff
        losses = " ".join(f"{x:.4f}" for _, x in sorted(r["losses"].items()))
        print(f"| {r['label']} | {r['recipe']} | {r['wall_s']} | {r['steps_s']} | {losses} "
              f"| {diff:.2e} |")  # fmt: skip
    same = next(r for r in runs if r["gpus"] == most and r is not resumed)
    both = [*same["losses"].items(), *(("eval", v) for v in same["eval_losses"].values())]
    other = [*resumed["losses"].values(), *resumed["eval_losses"].values()]
    resume_diff = max(rel(a, b) for (_, a), b in zip(both, other, strict=True))
    print(
        f"\nresumed run: resumed_from_step {resumed['resumed_from_step']} (at least {SAVE_AT}); "
        f"every logged and eval loss against the uninterrupted gpu {most} run: max rel. diff "
        f"{resume_diff:.2e}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps({"runs": runs, "resume_diff": resume_diff}, indent=1))
    return 0 if (resumed["resumed_from_step"] or 0) >= SAVE_AT else 1


if __name__ == "__main__":
    sys.exit(main())
