"""Experiments in the base's DAG, without running a job (seconds): the Snakefile loads itself
once per experiment as a Snakemake module (rules exp_<name>_<rule>); an experiment's jobs are the
ones its change reaches, the others are the base's jobs (one job, the base's files). The
library's side: tests/core/trees/test_experiments.py; end to end:
tests/pipeline/test_experiments_run.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from checkout import copy_checkout, snakemake
from helpers import job_counts, load_workflow

from ablate.core.reruns import runcache
from ablate.core.trees import experiments as E

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
LR = {"mask": {"finetune": {"variants": {"3A": {"learning_rate": 5.0e-4}}}}}
#: the tables, plots, plan and STATUS of the experiment's tree and its rule `all`
TABLES = ("recovery_table", "plot_scores", "plot_loss_curves", "mask_claims")
TREE = ("plan_estimate", "plan", "status", "all")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return copy_checkout(tmp_path_factory.mktemp("wf_exp"))


def overlay(wd: Path, name: str, experiments: dict) -> str:
    path = wd / E.OVERLAYS / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"experiments": experiments}))
    return str(path.relative_to(wd))


def test_one_key_experiment_runs_only_what_the_key_reaches(fresh):
    """Its own jobs: 3A's finetune and two evaluations, the tables, its plan and STATUS; the
    base's jobs it reads (here, in a fresh checkout, to run) are the base's rules' jobs, and the
    base's 3A (which it does not read) is not planned."""
    args = ("--configfile", "config/config.yaml", overlay(fresh, "lr", {"lr": LR}))
    r = snakemake(fresh, "-n", "exp_lr_all", *args, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    counts = job_counts(r.stdout)
    own = {k.removeprefix("exp_lr_"): n for k, n in counts.items() if k.startswith("exp_lr_")}
    assert own == {"finetune": 1, "eval_model": 2, **dict.fromkeys(TABLES + TREE, 1)}
    assert counts["finetune"] == 2 and counts["eval_model"] == 6  # the base's 3B, 5B and base
    # the base's own target, rule all, runs the base and every experiment of its config
    r = snakemake(fresh, "-n", *args, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    both = job_counts(r.stdout)
    assert both["finetune"] == 3 and both["exp_lr_finetune"] == 1 and both["all"] == 1


def test_a_sweep_is_one_dag_with_the_shared_jobs_once(fresh):
    """Three learning rates of 3A: three finetunes and six evaluations of their own, and every
    other job once, the base's."""
    sweep = {
        f"lr-{v}": {"mask": {"finetune": {"variants": {"3A": {"learning_rate": v}}}}}
        for v in (1.0e-4, 5.0e-4, 2.0e-3)
    }
    args = ("--configfile", "config/config.yaml", overlay(fresh, "sweep", sweep))
    targets = [f"{E.rule_prefix(n)}all" for n in sweep]
    r = snakemake(fresh, "-n", *targets, *args, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    counts = job_counts(r.stdout)
    mine = {k: n for k, n in counts.items() if k.startswith("exp_")}
    assert sum(n for k, n in mine.items() if k.endswith("_finetune")) == 3
    assert sum(n for k, n in mine.items() if k.endswith("_eval_model")) == 6
    assert (counts["prepare_model"], counts["make_data"], counts["leakage_probe"]) == (1, 1, 2)


def test_a_shared_job_is_the_bases_job_as_snakemake_expands_it(tmp_path):
    """Soundness of sharing: for an experiment of each kind of key, every shared job whose rule the
    experiment's module has expands to the base's params, and its inputs to the base's files
    (the module's replace_prefix): the same job, so running it once is right. A key no slice
    holds (threads) shares nothing of its study."""
    wd = copy_checkout(tmp_path / "wf")
    cases = {
        "lr": LR,
        "margin": {"mask": {"claims": {"side_effect_margin": 0.2}}},
        "batch": {"mask": {"eval": {"max_batch_tokens": 8192}}},
        "k": {"bridge": {"grid": {"2b": {"K": 5}}}},
        "pairs": {"mask": {"leakage": {"n_pairs": 8}}},
        "seeds": {"mask": {"finetune": {"variants": {"3B": {"seeds": [5, 6]}}}}},
        "threads": {"mask": {"resources": {"eval": {"threads": 2}}}},
    }
    cfg = copy.deepcopy(DEFAULT)
    cfg["experiments"] = cases
    (wd / "with_experiments.yaml").write_text(yaml.safe_dump(cfg))
    wf = load_workflow(wd, "with_experiments.yaml")
    base = {j.name: j for j in wf.globals["JOBS"]}
    compared = 0
    for plan in wf.globals["EXPERIMENTS"]:
        for job in plan.jobs:
            if not job.labels.get("shared") or not wf.is_rule(plan.prefix + job.rule):
                continue
            mine = runcache.job_spec(
                runcache.rule_job(wf.get_rule(plan.prefix + job.rule), job.wildcards)
            )
            theirs = runcache.job_spec(runcache.rule_job(wf.get_rule(job.rule), job.wildcards))
            assert mine["params"] == theirs["params"], (plan.name, job.name)
            assert sorted(mine["inputs"]) == sorted(theirs["inputs"]), (plan.name, job.name)
            assert base[job.name].outputs == job.outputs
            compared += 1
    assert compared > 20
    threads = next(p for p in wf.globals["EXPERIMENTS"] if p.name == "threads")
    assert not [j for j in threads.jobs if j.study == "mask" and j.labels.get("shared")]
