"""Faults through Snakemake: one small study, run three times in a copy of the workflow.

Fake API keys are in the environment of every run. The study is the embedded default cut down to
what the faults need (the conftest tiny model as a local "pretrained" base, so no pretraining; one
stage-3 variant; two tasks), so the three runs take about as long as one stage of the full run:

1. `snakemake -c1`; once the finetune has saved checkpoint-6, its job process gets SIGKILL;
2. `snakemake -c1` again; once an evaluation is loading or scoring, Snakemake gets SIGINT (Ctrl-C);
3. `snakemake -c1` again: it finishes.

Then: the finetune resumed from its last save and equals an uninterrupted training run (losses,
weights, scores); the interrupted evaluation's outputs were removed and regenerated; no file under
results/ logs/ .snakemake/ benchmarks/ (nor Snakemake's own output) holds a secret; a bad config
afterwards fails before any job and leaves every output as it was.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch
import yaml
from checkout import copy_cache_entries, copy_checkout
from helpers import planned_jobs

from ablate.core.models.modeling import load_causal_lm
from ablate.core.outputs import checkpoint_integrity
from ablate.core.reruns import runcache
from ablate.mask import evaluation
from ablate.mask.training.entries import FinetuneSpec, finetune

# One worker runs the module (-n 2 --dist loadgroup): its three runs are made once, not once per worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reliability_pipeline")]

ROOT = Path(__file__).resolve().parents[2]
# Fake secrets: long and unique, so a hit in any file can only be a leak.
SECRETS = {
    "VAST_API_KEY": "vastFAKEsecret-2e8d4b6f0a1c3e57",
    "HF_TOKEN": "hf_FAKEsecretToken4a6c8e0b2d9f1e35",
    "AWS_SECRET_ACCESS_KEY": "awsFAKEsecretKey+5d7f9b1c3e2a4g6h",
    "AWS_ACCESS_KEY_ID": "AKIAFAKESECRET4567ZW",
}
# The kill lands some steps after checkpoint-KILL_AT is seen (the poll, the process lookup, a busy
# box: CI once saw checkpoint-12 of 12 saved first); MAX_STEPS leaves it room to land mid-training.
SAVE_STEPS, MAX_STEPS, KILL_AT = 3, 24, 6
TASKS = ["emb_repeat5", "emb_pair"]


def small_config(model_dir: Path) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["studies"] = ["mask"]  # the faults are the mask study's jobs': the bridge's add minutes
    cfg["mask"]["model"] = {"source": "pretrained", "path": str(model_dir), "revision": None}
    cfg["mask"]["data"]["embedded"].update(corpus_docs=20, task_docs=8, sft_pairs=48)
    cfg["mask"]["eval"]["tasks"] = [{"name": t, "metric": "acc_norm"} for t in TASKS]
    cfg["mask"]["leakage"]["n_pairs"] = 8
    cfg["mask"]["finetune"]["defaults"].update(
        max_steps=MAX_STEPS,
        save_steps=SAVE_STEPS,
        batch_size=4,
        eval_size=8,
        eval_steps=6,
        eval_batch_size=8,
        logging_steps=1,
    )
    cfg["mask"]["finetune"]["variants"] = {"3A": {"stage": 3, "policy": "causal"}}
    # no prefix-LM or long-run variant here: their claims are left out (claims roles 3B, 5B)
    cfg["mask"]["claims"] = {"prefix_variant": None, "long_variant": None}
    return cfg


def start(wd: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-c1", "--configfile", "small.yaml", *args],
        cwd=wd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal (Ctrl-C reaches the jobs too)
        # SIGINT handled, as in a terminal (a test run in the background has it ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, f"snakemake ended before {what}:\n{proc.stdout.read()[-6000:]}"
        assert time.time() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def job_process(proc: subprocess.Popen, script: str) -> psutil.Process:
    """The job (a child of snakemake) running workflow/scripts/<script>."""
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if any(script in part for part in child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no running job for {script}")


def incomplete_marks(wd: Path) -> set[str]:
    """Outputs Snakemake has marked incomplete (file names are the base64 of the output path)."""
    d = wd / ".snakemake/incomplete"
    return (
        {base64.b64decode(p.name).decode() for p in d.iterdir() if p.is_file()}
        if d.is_dir()
        else set()
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    wd = copy_checkout(tmp_path_factory.mktemp("faults"))
    (wd / "small.yaml").write_text(yaml.safe_dump(small_config(tiny_model_dir), sort_keys=False))
    env = {**os.environ, **SECRETS, "PYTHONUNBUFFERED": "1"}
    ckpts = wd / "results/finetune/3A/checkpoints"
    info: dict = {"wd": wd, "logs": []}

    # 1. SIGKILL the training job once it has saved checkpoint-KILL_AT
    proc = start(wd, env)
    wait_for(
        proc,
        (ckpts / f"checkpoint-{KILL_AT}" / checkpoint_integrity.CHECKPOINT_MARKER).exists,
        "checkpoint",
    )
    job_process(proc, "finetune.py").send_signal(signal.SIGKILL)
    out = proc.communicate(timeout=600)[0]
    info["logs"].append(out)
    info["kill"] = {
        "rc": proc.returncode,
        "log": out,
        "killed_log": (wd / "results/logs/finetune/3A.log").read_text(),
        "final_exists": (wd / "results/finetune/3A/final").exists(),
        "summary_exists": (wd / "results/finetune/3A/summary.json").exists(),
        "complete": [c.name for c in checkpoint_integrity.complete_checkpoints(ckpts)],
    }

    # 2. Ctrl-C while an evaluation runs (one this run started: run 1 may have finished some)
    started = time.time()
    proc = start(wd, env)
    logs = wd / "results/logs/eval_model"

    def running_evals():
        return [
            p
            for p in logs.glob("*.log")
            if p.stat().st_mtime >= started
            and "[eval] loading model" in (t := p.read_text())
            and "[eval] macro" not in t
        ]

    found: list[Path] = []

    def evaluating() -> bool:
        found[:] = found or running_evals()  # the first evaluation seen running is the one
        return bool(found)

    wait_for(proc, evaluating, "evaluation")
    log = found[0]
    model, policy = log.stem.split(".")
    time.sleep(0.5)  # into the model load / scoring
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
    info["finished_before_interrupt"] = "[eval] macro" in log.read_text()
    out = proc.communicate(timeout=600)[0]
    info["logs"].append(out)
    target = wd / f"results/eval/{model}/{policy}"
    info["interrupt"] = {
        "rc": proc.returncode,
        "log": out,
        "target": target,
        "at": time.time(),
        "left": sorted(p.name for p in target.glob("*")) if target.exists() else [],
        "incomplete": incomplete_marks(wd),
        "planned": planned_jobs(
            subprocess.run(
                [sys.executable, "-m", "snakemake", "-n", "--configfile", "small.yaml"],
                cwd=wd,
                env=env,
                capture_output=True,
                text=True,
            ).stdout
        ),
    }

    # 3. finish
    proc = start(wd, env)
    out = proc.communicate(timeout=900)[0]
    info["logs"].append(out)
    assert proc.returncode == 0, out[-8000:]
    return info


def test_sigkill_mid_training_fails_the_job_and_keeps_its_saves(runs):
    k = runs["kill"]
    assert k["rc"] != 0 and "Error in rule finetune" in k["log"], k["log"][-4000:]
    assert not k["final_exists"] and not k["summary_exists"]  # nothing a later stage could trust
    # the save seen, or a later one, kept whole (older saves are rotated out as in any run)
    steps = [checkpoint_integrity.step_of(c) for c in k["complete"]]
    assert steps and max(steps) >= KILL_AT, k["complete"]


def test_rerun_resumes_and_equals_an_uninterrupted_run(runs, tmp_path):
    wd = runs["wd"]
    log = (wd / "results/logs/finetune/3A.log").read_text()
    summary = json.loads((wd / "results/finetune/3A/summary.json").read_text())
    resumed = summary["resumed_from_step"]
    assert f"resuming from results/finetune/3A/checkpoints/checkpoint-{resumed}" in log
    reached = max(
        int(line.split("step ")[1].split("/")[0])
        for line in runs["kill"]["killed_log"].splitlines()
        if line.startswith("[finetune causal] step ")
    )
    assert resumed >= KILL_AT and reached - resumed <= SAVE_STEPS  # lost at most one save interval
    assert summary["steps_done"] == MAX_STEPS

    # the same training without the kill, in this process, at the job's one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = finetune(
            FinetuneSpec.parse("causal", summary["params"]),
            model_path=json.loads((wd / "results/model/base.json").read_text())["path"],
            data=wd / "results/data/sft.jsonl",
            out_dir=tmp_path / "ref",
            probe_result=json.loads((wd / "results/leakage/causal.json").read_text()),
        )
        for a, b in zip(summary["curves"]["train"], ref["curves"]["train"], strict=True):
            assert a["step"] == b["step"] and a["loss"] == pytest.approx(
                b["loss"], rel=1e-4, abs=1e-4
            )
        got, want = (
            load_causal_lm(p).state_dict()
            for p in (wd / "results/finetune/3A/final", tmp_path / "ref/final")
        )
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5)
        # and the stage-4 scores of the resumed model equal those of the uninterrupted one
        metrics = evaluation.evaluate(
            evaluation.EvalSpec.parse(TASKS),
            model=tmp_path / "ref/final",
            policy="causal",
            out_dir=tmp_path / "ref_eval",
            task_dirs=[wd / "results/data/tasks"],
        )
    finally:
        torch.set_num_threads(threads)
    ours = pd.read_parquet(wd / "results/eval/3A/causal/samples.parquet")
    theirs = pd.read_parquet(tmp_path / "ref_eval/samples.parquet")
    pd.testing.assert_series_equal(ours.loglikelihood, theirs.loglikelihood, rtol=1e-3, atol=1e-4)
    stored = json.loads((wd / "results/eval/3A/causal/metrics.json").read_text())
    for t in TASKS:
        assert stored["tasks"][t]["score"] == pytest.approx(
            metrics["tasks"][t]["score"], abs=1e-9
        ), t


def test_interrupted_eval_leaves_no_partial_output_and_reruns(runs):
    i = runs["interrupt"]
    assert i["rc"] != 0 and not runs["finished_before_interrupt"], i["log"][-4000:]
    # Snakemake removed the outputs of the job it interrupted (the eval writes via .tmp + rename);
    # anything it could not remove would be marked incomplete and redone
    model, policy = i["target"].parts[-2:]
    for name in ("metrics.json", "samples.parquet"):
        assert (
            name not in i["left"] or f"results/eval/{model}/{policy}/{name}" in i["incomplete"]
        ), i
    assert "Terminating processes on user request" in i["log"], i["log"][-3000:]
    assert ("eval_model", f"results/eval/{model}/{policy}/metrics.json") in i["planned"]
    metrics = i["target"] / "metrics.json"
    assert metrics.stat().st_mtime > i["at"]  # written by the finishing run, after the interruption
    assert json.loads(metrics.read_text())["policy"] == policy
    pd.read_parquet(i["target"] / "samples.parquet")
    wd = runs["wd"]
    assert not [p for p in (wd / "results").rglob("*.tmp")]
    assert incomplete_marks(wd) == set()
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "small.yaml"],
        cwd=wd,
        capture_output=True,
        text=True,
    )
    assert planned_jobs(r.stdout) == set(), r.stdout


def test_no_secret_in_any_output_log_or_metadata(runs):
    wd = runs["wd"]
    files = [
        p
        for d in ("results", "logs", ".snakemake", "benchmarks")
        for p in (wd / d).rglob("*")
        if p.is_file()
    ]
    assert len(files) > 30
    blobs = {str(p.relative_to(wd)): p.read_bytes() for p in files}
    blobs.update({f"snakemake run {n}": log.encode() for n, log in enumerate(runs["logs"], 1)})
    leaks = [
        (name, k) for name, data in blobs.items() for k, v in SECRETS.items() if v.encode() in data
    ]
    assert not leaks, leaks


def test_bad_config_fails_before_any_job_and_keeps_outputs(runs):
    wd = runs["wd"]

    def state():
        return {
            str(p): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in (wd / "results").rglob("*")
            if p.is_file()
        }

    before = state()
    cfg = yaml.safe_load((wd / "small.yaml").read_text())
    cfg["mask"]["finetune"]["defaults"]["learning_rate"] = "fast"
    (wd / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-c1", "--configfile", "bad.yaml"],
        cwd=wd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert (
        "invalid config at mask.finetune.defaults.learning_rate: 'fast' is not of type 'number'"
        in out
    ), out
    assert "Job stats" not in out
    assert state() == before


def test_sigint_to_snakemake_alone_saves_and_the_rerun_resumes(runs, tmp_path, tiny_model_dir):
    """`kill -INT <snakemake pid>` (a script's interrupt, not the terminal's Ctrl-C to the whole
    group) during a finetune with the default save_steps 0: Snakemake forwards it to the job, which
    ends its step, saves a complete checkpoint and stops; no result is written; the rerun resumes
    from that checkpoint and finishes the study, and then nothing is left to do. Before: the
    finetune ran on to its last step unsignalled, was left incomplete, and the rerun trained it
    again from step 0. The jobs upstream of the finetune (data, leakage probes, the base model's
    evaluations: not what this test is about) are restored from the run cache of the module's
    runs (`runs`: the same study but for the finetune's steps), as a second clone sharing the
    cache would; the finetune and what follows it compute."""
    wd = copy_checkout(tmp_path / "wd")
    copy_cache_entries(runs["wd"], wd)
    cfg = small_config(tiny_model_dir)
    steps = 40
    cfg["mask"]["finetune"]["defaults"].update(max_steps=steps, save_steps=0)
    (wd / "small.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = wd / "results/logs/finetune/3A.log"
    ckpts = wd / "results/finetune/3A/checkpoints"

    proc = start(wd, env)
    wait_for(proc, lambda: log.exists() and f"step 3/{steps}," in log.read_text(), "step 3")
    os.kill(proc.pid, signal.SIGINT)  # Snakemake alone
    out = proc.communicate(timeout=600)[0]
    killed_log = log.read_text()
    assert proc.returncode != 0, out[-4000:]
    probe = wd / "results/leakage/causal.json"
    assert runcache.marker_path([probe]).is_file(), out[-4000:]  # restored, not computed
    assert "[interrupt] SIGINT" in killed_log and "TrainingInterrupted" in killed_log, killed_log
    (saved,) = checkpoint_integrity.complete_checkpoints(ckpts)
    at = int(saved.name.split("-")[1])
    assert 3 <= at < steps, killed_log  # stopped promptly, not at the end
    assert not (wd / "results/finetune/3A/summary.json").exists()

    proc = start(wd, env)
    out = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, out[-6000:]
    assert f"resuming from {saved.relative_to(wd)}" in log.read_text()
    summary = json.loads((wd / "results/finetune/3A/summary.json").read_text())
    assert (summary["resumed_from_step"], summary["steps_done"]) == (at, steps)
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "small.yaml"],
        cwd=wd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert planned_jobs(r.stdout) == set(), r.stdout
