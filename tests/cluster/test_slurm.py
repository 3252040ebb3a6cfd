"""`snakemake --profile slurm results/recovery.csv` on a real one-node SLURM cluster on localhost
(slurm_local.py: munged, slurmctld, slurmd, two fake GPUs): the embedded default's GPU-capable
rules go through sbatch with --gpus from their resources, the CPU rules stay local, the outputs
equal a local run's, and a failing job is reported as failed. Every job but the base's two
evaluations is restored from the local run's run cache inside its SLURM job (`restored`); those
two, whose scores are compared, are computed on the cluster. A finetune computed through sbatch:
the two-GPU test.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from checkout import copy_cache_entries
from conftest import copy_checkout, run_snakemake
from helpers import jobs_said

pytestmark = pytest.mark.cluster

# Test pace and the test cluster: it has no slurmdbd, so jobs are followed with squeue (a real
# cluster's sacct is the plugin's default and what the profile leaves on).
FAST = (
    "--ablate-slurm-status-command",
    "squeue",
    "--ablate-slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "2",
    "--latency-wait",
    "5",
)
GPU_RULES = ("prepare_model", "leakage_probe", "finetune", "eval_model")
LOCAL_RULES = ("make_data", "recovery_table")
SCORE_TOL = 1e-6
#: 3A's steps in the two-GPU test (200 in the embedded default)
DP_STEPS = 10
#: The jobs the SLURM run computes on the cluster: the base's evaluations (its finetunes and
#: their evaluations are more of the same kind of job, minutes on the suite's 2 cores). Every other
#: job is restored from the local run's run cache, as a second clone sharing its cache would: it
#: still goes through sbatch (a restore happens inside the job script).
COMPUTED_RULE, COMPUTED_MODEL = "eval_model", "base"


def restored(parts: dict) -> bool:
    """Whether the SLURM run restores the job of these run-cache key parts (see above)."""
    model = parts.get("wildcards", {}).get("model")  # an evaluation's
    return (parts["rule"], model) != (COMPUTED_RULE, COMPUTED_MODEL)


def gpu_config(wd: Path, gpu_type: str) -> str:
    """The embedded default asking one GPU of the cluster's GRES type for every GPU-capable rule
    (resources are not params: the numbers must not change)."""
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    for group in cfg["mask"]["resources"].values():
        group.update(gpu=1, gpu_model=gpu_type)
    path = wd / "config" / "slurm-test.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path.relative_to(wd))


def slurm_jobs() -> dict[str, dict[str, str]]:
    """Every job slurmctld still knows (the test cluster keeps finished ones for MinJobAge=2 h):
    id -> fields."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def metrics_scores(wd: Path) -> dict[str, float]:
    scores = {}
    for f in sorted((wd / "results" / "eval").rglob("metrics.json")):
        m = json.loads(f.read_text())
        key = str(f.relative_to(wd))
        scores.update({f"{key}:{t}": v["score"] for t, v in m["tasks"].items()})
        scores[f"{key}:macro"] = m["macro"]["score"]
    return scores


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory, snapshot, embedded_local):
    wd = copy_checkout(tmp_path_factory.mktemp("slurm-checkout"), source=snapshot)
    copy_cache_entries(embedded_local, wd, restored)
    config = gpu_config(wd, slurm_cluster["gpu_type"])
    before = set(slurm_jobs())
    r = run_snakemake(
        wd,
        "--profile",
        "slurm",
        "results/recovery.csv",
        "--configfile",
        config,
        *FAST,
        env={"SBATCH_PARTITION": slurm_cluster["extra_partition"]},
        timeout=2400,
    )
    assert r.returncode == 0, r.stdout[-6000:]
    jobs = {k: v for k, v in slurm_jobs().items() if k not in before}
    return wd, r.stdout, jobs


def test_gpu_rules_went_through_sbatch_cpu_rules_stayed_local(slurm_run, slurm_cluster):
    wd, log, jobs = slurm_run
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert submitted and set(submitted) == set(jobs), (submitted, sorted(jobs))
    for rule in GPU_RULES:
        assert (wd / ".snakemake" / "slurm_logs" / f"rule_{rule}").is_dir(), rule
    for rule in LOCAL_RULES:  # ran in the snakemake process: no sbatch, no SLURM log
        assert f"localrule {rule}:" in log, rule
        assert not (wd / ".snakemake" / "slurm_logs" / f"rule_{rule}").exists(), rule
    # the plugin's --comment: rule_<rule>[_wildcards_<values>]
    rules = {
        re.fullmatch(r"rule_(.+?)(_wildcards_.*)?", j["Comment"]).group(1) for j in jobs.values()
    }
    assert rules == set(GPU_RULES), rules
    for j in jobs.values():
        assert j["JobState"] == "COMPLETED", j
        assert j["Partition"] == slurm_cluster["extra_partition"], j  # from $SBATCH_PARTITION
        # gpu + gpu_model -> --gpus=<type>:1 on the cluster's fake GPUs
        assert j.get("TresPerJob") == f"gres:gpu:{slurm_cluster['gpu_type']}:1", j


def test_slurm_outputs_equal_a_local_run(slurm_run, embedded_local):
    wd = slurm_run[0]
    # the compared scores include two computed on the cluster, the rest restored (`restored`)
    logs = wd / "results/logs"
    for log in (logs / COMPUTED_RULE).glob("*.log"):
        said = jobs_said(log.read_text())
        assert said == {(COMPUTED_RULE, "ran" if log.name.startswith("base.") else "restored"): 1}
    assert jobs_said((logs / "finetune/3A.log").read_text()) == {("finetune", "restored"): 1}
    local, slurm = metrics_scores(embedded_local), metrics_scores(wd)
    assert local and set(local) == set(slurm)
    diff = {k: (local[k], slurm[k]) for k in local if abs(local[k] - slurm[k]) > SCORE_TOL}
    assert not diff, diff
    a = pd.read_csv(embedded_local / "results" / "recovery.csv")
    b = pd.read_csv(wd / "results" / "recovery.csv")
    numeric = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    keys = ["task", "stage", "variant", "eval_policy"]
    a, b = a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[keys], b[keys])
    pd.testing.assert_frame_equal(a[numeric], b[numeric], atol=SCORE_TOL, rtol=0)


def test_failing_slurm_job_is_reported_as_failed(slurm_run, slurm_cluster):
    """A corrupted checkpoint makes its evaluation fail inside the SLURM job: Snakemake reports
    the job failed with its SLURM job id and logs and exits non-zero. (After the tests that read
    the run: it edits it.)"""
    wd = slurm_run[0]
    weights = next((wd / "results" / "finetune" / "3A" / "final").glob("*.safetensors"))
    with open(weights, "ab") as f:
        f.write(b"corrupted")
    target = "results/eval/3A/causal/metrics.json"
    r = run_snakemake(
        wd,
        "--profile",
        "slurm",
        "--force",
        target,
        "--configfile",
        "config/slurm-test.yaml",
        "--retries",
        "0",
        *FAST,
        log_name="fail.log",
        timeout=900,
    )
    assert r.returncode != 0
    m = re.search(r"SLURM-job '(\d+)' failed, SLURM status is: 'FAILED'", r.stdout)
    assert m and "Error in rule eval_model" in r.stdout, r.stdout[-4000:]
    assert slurm_jobs()[m.group(1)]["JobState"] == "FAILED"
    rule_log = (wd / "results/logs" / "eval_model" / "3A.causal.log").read_text()
    assert "CheckpointError" in rule_log, rule_log[-2000:]
    assert not (wd / target).exists()  # Snakemake removed the failed job's output


def test_a_finetune_of_two_gpus_is_one_task_that_launches_two_processes(slurm_run, slurm_cluster):
    """`mask.resources.finetune.gpu: 2`: one SLURM task holding both GPUs (the rules' one rule for
    any job of N GPUs, tasks_per_gpu 0: the plugin's default --ntasks-per-gpu=1 would start the
    job's script twice), which launches its 2 data-parallel processes (gloo on CPU) once."""
    wd = slurm_run[0]
    cfg = yaml.safe_load((wd / "config" / "slurm-test.yaml").read_text())
    cfg["mask"]["resources"]["finetune"]["gpu"] = 2
    # a few steps: what is checked is the job's task and its launch, not what 3A learns (the
    # changed params leave 3A's finetune stale for the other tests: hence this one runs last)
    cfg["mask"]["finetune"]["variants"]["3A"]["max_steps"] = DP_STEPS
    (wd / "config" / "slurm-dp.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    before = set(slurm_jobs())
    r = run_snakemake(
        wd,
        "results/finetune/3A/summary.json",  # first: --forcerun takes every word up to an option
        "--profile",
        "slurm",
        "--forcerun",
        "finetune",
        "--config",
        "run_cache=False",  # a forced job is recomputed, not restored from the run cache
        "--configfile",
        "config/slurm-dp.yaml",
        *FAST,
        env={"SBATCH_PARTITION": slurm_cluster["extra_partition"]},
        log_name="dp.log",
        timeout=1200,
    )
    assert r.returncode == 0, r.stdout[-6000:]
    (job,) = (j for k, j in slurm_jobs().items() if k not in before)
    assert job["JobState"] == "COMPLETED" and job["NumTasks"] == "1", job
    assert job.get("TresPerJob") == f"gres:gpu:{slurm_cluster['gpu_type']}:2", job
    log = (wd / "results/logs/finetune/3A.log").read_text()
    # each of the launcher's processes says its recipe once: one launcher of 2 processes
    assert log.count("finetune causal: 2 processes, ") == 2, log[-3000:]
