"""`--profile vast` against a local stand-in of the Vast.ai API whose instances are real sshd
processes in their own namespaces (fake_vast.py): jobs ship, run on the instance, come back, and
the instance is destroyed; failures, lost instances and interrupts are handled.

The tests of the workarounds fail with the stock plugin: ABLATE_TEST_VAST_EXECUTOR=vastai
runs them on snakemake-executor-plugin-vastai 0.1.4 itself; the lost-instance, SIGTERM,
failed-log and group tests then fail (SIGINT passes: the stock plugin handles Ctrl-C).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest
from conftest import (
    CLEAN_ENV,
    EXECUTOR,
    SNAKEMAKE,
    STOCK,
    VAST_POLL,
    api_calls,
    destroyed,
    git_add_all,
    minimal_checkout,
    run_snakemake,
    start_snakemake,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.cluster

LOST_AFTER = 5


def job_started(vast, marker: str):
    """The id of an instance whose job log shows `marker` (the job is running there)."""
    for iid in list(vast.instances):
        log = vast.workdir(iid) / "logs" / "gpu_step" / "1.log"
        if log.exists() and marker in log.read_text():
            return iid
    return None


# ----------------------------------------------------------------------- the minimal workflow


def test_jobs_ship_run_on_instance_come_back_and_instances_are_destroyed(vast, tmp_path):
    wd = minimal_checkout(tmp_path)
    vast.fail_next_creates(2)  # the two cheapest offers were taken meanwhile
    # --cores 1: what the workflow profile's `cores: all` means on a 1-core submit host
    r = run_snakemake(
        wd, "--profile", "vast", *VAST_POLL, *EXECUTOR, "--cores", "1", env=vast.env, timeout=300
    )
    assert r.returncode == 0, r.stdout[-5000:]

    # the next offer is tried when creation fails: 500, 501 refused, 502 rented, then 500 again
    asks = [c["path"] for c in api_calls(vast, "PUT", "/asks/")]
    assert asks == [f"/api/v0/asks/{o}/" for o in (500, 501, 502, 500)], asks
    assert len(vast.instances) == 2
    # the profile's settings and the key from the environment reached the API
    if not STOCK:
        query = api_calls(vast, "POST", "/bundles/")[0]["body"]
        assert float(query["dph_total"]["lte"]) == 3.0, query  # price cap
        assert query["gpu_name"] == {"eq": "H100 SXM"}, query
        assert float(query["disk_space"]["gte"]) == 80.0, query
        assert float(query["reliability"]["gt"]) == 0.98, query
        create = api_calls(vast, "PUT", "/asks/")[-1]["body"]
        assert create["image"] == "vastai/pytorch:@vastai-automatic-tag" and create["disk"] == 80
    assert {c["auth"] for c in vast.calls} == {"Bearer test-key"}

    for iid in vast.instances:
        remote = vast.workdir(iid)
        assert (remote / "Snakefile").exists()  # code shipped
        assert (remote / "data" / "input.txt").read_text() == "local prep\n"  # input shipped
        assert (remote / "exit_code").read_text().strip() == "0"  # the job ran there
        # the instance's cores, not the submit host's
        assert "--cores 'all'" in (remote / "job.sh").read_text()
    for i in (1, 2):  # outputs came back, written on the instance
        out = (wd / "results" / "gpu" / f"{i}.txt").read_text()
        assert out.startswith("local prep\n") and "cwd=/snakemake-workdir" in out, out
        assert "start delay=0" in (wd / "logs" / "gpu_step" / f"{i}.log").read_text()
    assert "localrule summarize:" in r.stdout  # the CPU rule stayed here
    assert destroyed(vast) == set(vast.instances) and vast.alive() == []


def test_failed_job_is_reported_its_log_fetched_and_instance_destroyed(vast, tmp_path):
    wd = minimal_checkout(tmp_path)
    r = run_snakemake(
        wd,
        "--profile",
        "vast",
        *VAST_POLL,
        *EXECUTOR,
        "--retries",
        "0",
        "results/fail.txt",
        env=vast.env,
        timeout=300,
    )
    assert r.returncode != 0
    # the instance's snakemake exits 1 for a failed job (the shell's 3 is in the log)
    assert "Error in rule will_fail" in r.stdout, r.stdout[-3000:]
    assert "Job finished with exit code 1" in r.stdout, r.stdout[-3000:]
    log = wd / "logs" / "will_fail.log"
    assert log.exists(), "the failed job's log: file was not copied back"
    assert "marker-7f3a" in log.read_text()
    assert len(vast.instances) == 1 and destroyed(vast) == set(vast.instances)
    assert vast.alive() == []


def test_instance_lost_mid_job_fails_within_bound_and_job_is_retried(vast, tmp_path):
    wd = minimal_checkout(tmp_path)
    proc = start_snakemake(
        wd,
        vast,
        "results/gpu/1.txt",
        "--ablate-vast-lost-after",
        str(LOST_AFTER),
        "--retries",
        "1",
        "--config",
        "first_attempt_delay=600",
    )
    log = wd / "snakemake.log"
    try:
        first = wait_for(
            lambda: job_started(vast, "start delay=600"), "the job to start", 180, proc, log
        )
        preempted = time.monotonic()
        vast.preempt(first)  # host gone mid-job; the API says 'offline'
        # failed and resubmitted to a new instance within lost-after + a poll + SSH/API slack
        wait_for(
            lambda: len(vast.instances) >= 2,
            "the retry on a new instance",
            LOST_AFTER + 60,
            proc,
            log,
        )
        took = time.monotonic() - preempted
        assert took < LOST_AFTER + 30, f"lost instance noticed after {took:.0f} s"
        assert proc.wait(timeout=240) == 0, (wd / "snakemake.log").read_text()[-4000:]
    finally:
        stop_process(proc)
    out = (wd / "snakemake.log").read_text()
    assert "instance lost mid-job" in out, out[-3000:]
    assert "start delay=0" in (wd / "logs" / "gpu_step" / "1.log").read_text()  # attempt 2
    assert "cwd=/snakemake-workdir" in (wd / "results" / "gpu" / "1.txt").read_text()
    assert first in destroyed(vast) and vast.alive() == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_run_leaves_no_instance_alive(vast, tmp_path, sig):
    wd = minimal_checkout(tmp_path)
    proc = start_snakemake(wd, vast, "results/gpu/1.txt", "--config", "first_attempt_delay=600")
    try:
        iid = wait_for(
            lambda: job_started(vast, "start delay=600"),
            "the job to start",
            180,
            proc,
            wd / "snakemake.log",
        )
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"snakemake still running 60 s after {sig.name}; instances alive: {vast.alive()}"
            )
    finally:
        stop_process(proc)
    assert rc != 0
    assert iid in destroyed(vast) and vast.alive() == [], (wd / "snakemake.log").read_text()[-3000:]


def test_group_job_runs_on_one_instance_and_brings_back_its_checkpoint(vast, tmp_path):
    """The profile's `groups:` (finetune + the evaluations of its checkpoint) on the pipeline's
    shape: one instance for the three jobs, the checkpoint written and read there and downloaded
    once, with the benchmark files."""
    wd = minimal_checkout(tmp_path)
    r = run_snakemake(
        wd,
        "--profile",
        "vast",
        *VAST_POLL,
        *EXECUTOR,
        "results/eval/causal.txt",
        "results/eval/prefill_bidir.txt",
        env=vast.env,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-4000:]
    assert len(vast.instances) == 1, f"{len(vast.instances)} instances for one group"
    (iid,) = vast.instances
    job_sh = (vast.workdir(iid) / "job.sh").read_text()
    assert "'finetune:'" in job_sh and "'eval_model:policy=causal'" in job_sh, job_sh
    if not STOCK:
        assert "num_gpus" in (q := api_calls(vast, "POST", "/bundles/")[0]["body"]), q
        assert int(q["num_gpus"]["eq"]) == 1, q  # evaluations one after the other on one GPU
    local_ckpt = wd / "results" / "ckpt" / "weights.bin"
    assert local_ckpt.stat().st_size == 2_000_000
    assert local_ckpt.read_bytes() == (vast.workdir(iid) / "results/ckpt/weights.bin").read_bytes()
    for p in ("causal", "prefill_bidir"):
        out = (wd / "results" / "eval" / f"{p}.txt").read_text()
        assert out.startswith("2000000\n") and "cwd=/snakemake-workdir" in out, out
        assert (wd / "benchmarks" / "eval_model" / f"{p}.tsv").exists()
    assert destroyed(vast) == {iid} and vast.alive() == []


# ----------------------------------------------------------------------- the pipeline


def test_literal_vast_command_runs_pipeline_gpu_rules(vast, embedded_local, tmp_path):
    """The README's command with the embedded default's target, after the README's setup
    (VAST_API_KEY exported; VAST_URL points the SDK at the fake): `snakemake --profile vast
    results/recovery.csv`, in the finished
    local run minus variant 3A's finetune and evaluations and the stage-2 evaluation. Two
    instances: the 3A group (finetune + its two evaluations: the base model shipped as a declared
    input, the checkpoint written and read on the instance, downloaded once) and the base model's
    evaluation (the base model shipped). Outputs come back equal to the local run's; the table is
    rebuilt here."""
    wd = tmp_path / "checkout"
    shutil.copytree(embedded_local, wd, symlinks=True)
    git_add_all(wd)  # results/ is git-ignored: only the sources are tracked, and shipped
    evals = ["3A/causal", "3A/prefill_bidir", "base/prefill_bidir"]
    reference = {
        e: json.loads((wd / "results/eval" / e / "metrics.json").read_text()) for e in evals
    }
    final_ref = json.loads((wd / "results/finetune/3A/summary.json").read_text())
    for e in evals:
        shutil.rmtree(wd / "results/eval" / e)
    shutil.rmtree(wd / "results/finetune/3A")  # its checkpoints too: a run from scratch
    for f in ("recovery.csv", "recovery.parquet"):
        (wd / "results" / f).unlink()

    r = run_snakemake(wd, "--profile", "vast", "results/recovery.csv", env=vast.env, timeout=1200)
    assert r.returncode == 0, r.stdout[-6000:]

    assert len(vast.instances) == 2, r.stdout[-3000:]
    ran_on = {
        e: [
            i
            for i in vast.instances
            if (vast.workdir(i) / "results/eval" / e / "metrics.json").exists()
        ]
        for e in evals
    }
    assert ran_on["3A/causal"] == ran_on["3A/prefill_bidir"] != ran_on["base/prefill_bidir"]
    shipped = {  # besides the code: the inputs each instance got from here
        ran_on["3A/causal"][0]: (
            "results/model/base/final/model.safetensors",
            "results/leakage/causal.verdict.json",  # what a finetune reads of its probe
            "results/data/sft.jsonl",
        ),
        ran_on["base/prefill_bidir"][0]: (
            "results/model/base.json",
            "results/model/base/final/model.safetensors",
            "results/data/tasks",
        ),
    }
    for iid, inputs in shipped.items():
        remote = vast.workdir(iid)
        for f in (
            "src/ablate/mask/evaluation.py",
            "workflow/scripts/eval_model.py",
            "rules/mask/eval.smk",
            "config/config.yaml",
            *inputs,
        ):
            assert (remote / f).exists(), (iid, f)
        assert (remote / "exit_code").read_text().strip() == "0"
    # the checkpoint was made on the group's instance and came back once
    ckpt = "results/finetune/3A/final/model.safetensors"
    assert (vast.workdir(ran_on["3A/causal"][0]) / ckpt).read_bytes() == (wd / ckpt).read_bytes()
    summary = json.loads((wd / "results/finetune/3A/summary.json").read_text())
    assert summary["final_eval_loss"] == pytest.approx(final_ref["final_eval_loss"], rel=1e-5)
    for e in evals:
        got = json.loads((wd / "results/eval" / e / "metrics.json").read_text())
        for task, v in reference[e]["tasks"].items():
            assert got["tasks"][task]["score"] == pytest.approx(v["score"], abs=1e-6), (e, task)
        assert (wd / "results/eval" / e / "samples.parquet").exists()
        assert (wd / "results/benchmarks/eval_model" / "{}.{}.tsv".format(*e.split("/"))).exists()
    assert (wd / "results/benchmarks/finetune/3A.tsv").exists()
    assert "localrule recovery_table:" in r.stdout
    table = pd.read_csv(wd / "results" / "recovery.csv")
    assert len(table) == len(pd.read_csv(embedded_local / "results" / "recovery.csv"))
    assert destroyed(vast) == set(vast.instances) and vast.alive() == []
    # the job is recorded like a local one: nothing left to do
    again = subprocess.run(
        [SNAKEMAKE, "-n", "results/recovery.csv"],
        cwd=wd,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
