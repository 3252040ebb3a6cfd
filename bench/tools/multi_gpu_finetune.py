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
of the same GPUs (every logged loss and the final eval loss); with --control, one GPU again with
other finetune settings that change the rounding, not the function (the curves' tolerance).

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

from ablate.core.outputs import checkpoint_integrity
from ablate.mask import layout

REPO = Path(__file__).resolve().parents[2]
CONFIG = "config/ministral3b-smoke.yaml"
VARIANT = "3A"
SAVE_AT = 10
# set by main from --config: the config files and their results folder
CONFIGS: list[str] = [CONFIG]
RESULTS = Path("results/smoke")


def target() -> Path:
    return RESULTS / layout.PATTERNS["finetune_summary"].format(variant=VARIANT)


def checkpoints() -> Path:
    return target().parent / checkpoint_integrity.CHECKPOINTS_DIR


def snakemake(work: Path, overlay: dict, cores: int, gpus: int, *extra: str) -> subprocess.Popen:
    """`snakemake TARGET` with the overlay after the smoke config (started, not waited for)."""
    path = work / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    cmd = [sys.executable, "-m", "snakemake", str(target()), "--cores", str(cores),
           "--resources", f"gpu={gpus}", *extra,
           "--configfile", *CONFIGS, str(path.relative_to(work))]  # fmt: skip
    print("$", " ".join(cmd[1:]), flush=True)
    return subprocess.Popen(cmd, cwd=work)


def overlay(gpus: int, save_steps: int = 0, **finetune) -> dict:
    return {
        "run_cache": None,  # a forced finetune recomputes (a cached one would be restored)
        "allow_cpu": True,  # read only where no GPU shows: a CPU check of this tool (--config)
        "mask": {
            "resources": {"finetune": {"gpu": gpus}},
            "finetune": {"defaults": {"save_steps": save_steps, **finetune}},
        },
    }


def record(work: Path, label: str, gpus: int) -> dict:
    """The finished finetune's summary, benchmark wall time and recipe line."""
    summary = json.loads((work / target()).read_text())
    bench, log = (
        work / RESULTS / layout.PATTERNS[key].format(variant=VARIANT)
        for key in ("finetune_benchmark", "finetune_log")
    )
    bench, log = (f if f.exists() else None for f in (bench, log))
    recipe = [ln for ln in log.read_text().splitlines() if " processes, " in ln] if log else []
    return dict(
        label=label,
        gpus=gpus,
        wall_s=float(bench.read_text().splitlines()[1].split("\t")[0]) if bench else None,
        steps_s=(summary.get("phases") or {}).get("train.steps"),
        resumed_from_step=summary.get("resumed_from_step"),
        recipe=recipe[0].split(": ", 1)[-1].split(" (")[0] if recipe else "one process",
        losses={
            str(e["step"]): e["loss"] for e in summary["curves"]["train"]
        },  # as JSON keeps them
        eval_losses={str(e["step"]): e["eval_loss"] for e in summary["curves"]["eval"]},
    )


def interrupt_after_checkpoint(proc: subprocess.Popen, work: Path, timeout_s: float) -> None:
    """SIGINT to snakemake once checkpoint-SAVE_AT is complete (its marker written last)."""
    done = work / checkpoints() / f"checkpoint-{SAVE_AT}" / checkpoint_integrity.CHECKPOINT_MARKER
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < timeout_s:
        if done.exists():
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.5)
    proc.wait()


def batch_size() -> int:
    """The finetunes' batch_size in the config files (the last that sets it)."""
    found = 0
    for f in CONFIGS:
        defaults = yaml.safe_load((REPO / f).read_text()).get("mask", {}).get("finetune", {})
        found = (defaults.get("defaults") or {}).get("batch_size", found)
    return found


def save(out: str | None, result: dict) -> None:
    if out:
        Path(out).write_text(json.dumps(result, indent=1))


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(a)


def resume(work: Path, args, runs: list[dict], most: int) -> float | None:
    """A sharded run that saves, interrupted after its checkpoint, and its rerun, which must
    resume: appended to ``runs``; the largest relative difference of its losses from the
    uninterrupted run of ``most`` GPUs (None: it failed or did not resume)."""
    one = runs[0]
    interrupt_after_checkpoint(snakemake(work, overlay(most, SAVE_AT), args.cores, most), work, 900)
    if snakemake(work, overlay(most, SAVE_AT), args.cores, most).wait():
        return None
    resumed = record(work, f"gpu {most}, interrupted after checkpoint-{SAVE_AT}, rerun", most)
    runs.append(resumed)
    print("\n| run | recipe | job wall s | optimizer steps s | loss at each logged step "
          "| max rel. diff from gpu 1 |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in runs:
        diff = max(rel(one["losses"][s], x) for s, x in r["losses"].items())
        r["loss_rel_diff_vs_1"] = diff
        losses = " ".join(f"{r['losses'][s]:.4f}" for s in sorted(r["losses"], key=int))
        print(f"| {r['label']} | {r['recipe']} | {r['wall_s']} | {r['steps_s']} | {losses} "
              f"| {diff:.2e} |")  # fmt: skip
    same = next(r for r in runs if r["gpus"] == most and r is not resumed)
    both = [*same["losses"].items(), *(("eval", v) for v in same["eval_losses"].values())]
    other = [*resumed["losses"].values(), *resumed["eval_losses"].values()]
    diffs = {f"{s}": rel(a, b) for (s, a), b in zip(both, other, strict=True)}
    resume_diff = max(diffs.values())
    print(
        f"\nresumed run: resumed_from_step {resumed['resumed_from_step']} (at least {SAVE_AT}); "
        f"every logged and eval loss against the uninterrupted gpu {most} run: max rel. diff "
        f"{resume_diff:.2e}; per logged step: " + " ".join(f"{s}:{d:.1e}" for s, d in diffs.items())
    )
    save(args.out, {"runs": runs, "resume_diff": resume_diff})
    if (resumed["resumed_from_step"] or 0) < SAVE_AT:
        print(f"the rerun did not resume from checkpoint-{SAVE_AT} or later")
        return None
    return resume_diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--cores", type=int, default=32)
    ap.add_argument("--work", default="/tmp/multi_gpu_finetune", help="the run's folder (a copy)")
    ap.add_argument("--out", help="write the runs as JSON")
    ap.add_argument(
        "--config", nargs="+", default=[CONFIG], help="config files (another: a check on CPU)"
    )
    ap.add_argument(
        "--micro",
        action="store_true",
        help="also one GPU with the step's examples in as many micro-batches as the most GPUs "
        "take (the numerics of a split step without the processes: the loss curves' tolerance)",
    )
    ap.add_argument(
        "--against", help="the runs of an earlier --out in place of running gpu 1 and --gpus again"
    )
    ap.add_argument(
        "--control",
        nargs="+",
        metavar="KEY=VALUE",
        help="last, one GPU again with these finetune settings, e.g. compile_layers=true: the same "
        "function with other rounding (fused kernels), so its distance from gpu 1 is the loss "
        "curves' tolerance",
    )
    ap.add_argument(
        "--no-resume", action="store_true", help="skip the interrupted and resumed sharded run"
    )
    args = ap.parse_args(argv)
    global CONFIGS, RESULTS
    CONFIGS = args.config
    for f in CONFIGS:  # the last file that sets `results` names the folder
        RESULTS = Path(yaml.safe_load((REPO / f).read_text()).get("results", RESULTS))
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(
        REPO,
        work,
        ignore=shutil.ignore_patterns(".git", "results", ".snakemake", ".venv", ".ablate", ".whl"),
    )
    most = max(args.gpus)
    runs = json.loads(Path(args.against).read_text())["runs"] if args.against else []
    for gpus in [] if args.against else [1, *args.gpus]:
        extra = ("--forcerun", "finetune") if runs else ()
        if snakemake(work, overlay(gpus), args.cores, most, *extra).wait():
            return 1
        runs.append(record(work, f"gpu {gpus}", gpus))
        save(args.out, {"runs": runs})  # each run as it ends: a time limit keeps the ones done
    if args.micro:
        split = dict(batch_size=batch_size() // most, grad_accum=most)
        if snakemake(work, overlay(1, **split), args.cores, most).wait():
            return 1
        label = f"gpu 1, {split['batch_size']} x grad_accum {most}"
        runs.append(dict(record(work, label, 1), gpus="1 (micro)"))
        save(args.out, {"runs": runs})
    one = runs[0]
    resume_diff = None if args.no_resume else resume(work, args, runs, most)
    if resume_diff is None and not args.no_resume:
        return 1
    if args.control:
        settings = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.control)}
        extra = ("--forcerun", "finetune")
        if snakemake(work, overlay(1, **settings), args.cores, most, *extra).wait():
            return 1
        control = record(work, "gpu 1, " + " ".join(args.control), 1)
        diffs = {s: rel(one["losses"][s], x) for s, x in control["losses"].items()}
        control["loss_rel_diff_vs_1"] = max(diffs.values())
        runs.append(control)
        print(f"\ncontrol {control['label']}: max rel. diff from gpu 1 "
              f"{control['loss_rel_diff_vs_1']:.2e}; "
              + " ".join(f"{s}:{d:.1e}" for s, d in diffs.items()))  # fmt: skip
        save(args.out, {"runs": runs, "resume_diff": resume_diff})
    return 0


if __name__ == "__main__":
    sys.exit(main())
