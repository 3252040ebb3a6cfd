"""End to end: the loop a researcher takes on the embedded default, on a copy of the session's
finished quick start (tests/conftest.py `embedded_run`, run with this checkout's code and the
run cache on, its default): an experiment with one finetune key changed, a sweep of two values,
the table, a diff, a seed added (checkout.run_experiments_loop, once per session: the conftest
fixture `experiments_loop`). Each step asserts what ran and what was reused, by the one line
every job says (`[job] <rule> <wildcards>: ran ...` or `restored from the run cache ...`,
ablate.job_script: helpers.jobs_said), and what Snakemake planned. An edit in place and its revert:
the guide's "What reruns when" commands, run and asserted the same way by
tests/pipeline/test_readme.py.

An experiment's deltas and the base it was made from, through Snakemake on the toy study
(tests/toy_study: one job, seconds): `test_a_base_rerun_since_an_experiment_withholds_its_deltas`.

The dry-run side (job counts of an experiment and a sweep, sharing sound against Snakemake's own
expansion): tests/pipeline/test_experiments_dag.py."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from checkout import LOOP_KEY as KEY
from checkout import copy_checkout, snakemake
from helpers import jobs_said

pytestmark = pytest.mark.slow

TABLES = ("recovery_table", "plot_scores", "plot_loss_curves", "mask_claims")
TREE = ("plan_estimate", "plan", "status")


def test_one_key_experiment_runs_only_the_jobs_downstream_of_the_key(experiments_loop):
    """3A's finetune, its two evaluations, the tables, plots, claims, plan and STATUS of its
    tree: 10 jobs; nothing upstream, nothing of the bridge study, no job of the base."""
    wd, steps = experiments_loop
    ran = jobs_said(steps["lr"])
    assert ran == Counter(
        {
            ("exp_lr_finetune", "ran"): 1,
            ("exp_lr_eval_model", "ran"): 2,
            **{(f"exp_lr_{r}", "ran"): 1 for r in TABLES},
            **{(f"exp_lr_{r}", "remade"): 1 for r in TREE},  # of the tree now: never restored
        }
    ), steps["lr"][-4000:]
    exp = wd / "results/exp/lr"
    assert (exp / "finetune/3A/final").is_dir() and not (exp / "finetune/3B").exists()
    assert not (exp / "bridge").exists() and not (exp / "model").exists()
    status = (exp / "STATUS.md").read_text()
    assert "the base's job" in status and "| to run |" not in status
    # the run ends with the experiment's own summary (exp_summary.closing_lines), not the base's
    end = steps["lr"][steps["lr"].index("Finished experiment lr: its tree is results/exp/lr/") :]
    assert "of its own ran" in end and "claims in its tree: mask: " in end, end
    assert "results are under" not in steps["lr"]


def test_a_sweep_costs_its_new_finetunes_and_their_evaluations(experiments_loop):
    """Two learning rates of 3A in one DAG: 2e-3 trains and evaluates; 5e-4 is the `lr`
    experiment's finetune and evaluations, restored from the run cache by their key (the same
    rule, params and inputs), not recomputed."""
    _, steps = experiments_loop
    got = jobs_said(steps["sweep"])
    # each sweep point's rules are its own (exp_sweep_<point>_finetune): summed over the points
    finetunes = Counter({w: 0 for w in ("ran", "restored")})
    evals = finetunes.copy()
    for (rule, what), n in got.items():
        for suffix, counts in (("_finetune", finetunes), ("_eval_model", evals)):
            if rule.endswith(suffix):
                counts[what] += n
    assert finetunes == {"ran": 1, "restored": 1} and evals == {"ran": 2, "restored": 2}
    assert not [r for r, _ in got if not r.startswith("exp_sweep_")]  # no job of the base
    assert "restored from the run cache (key" in steps["sweep"]


def test_the_table_shows_each_experiment_with_its_key_and_macro_delta(experiments_loop):
    wd, steps = experiments_loop
    out = steps["runs"]
    table = out.split("\n\n")[0]
    # a row's first cell names its tree, then the trees of the same runs folded into it
    rows = {
        line.split(" | ")[0].strip("| ").split("; ")[0]: line for line in table.splitlines()[2:]
    }
    assert set(rows) >= {"results", "results/exp/lr", "results/exp/sweep-2.0e-3"}
    lr = rows["results/exp/lr"]
    assert (
        f"{KEY} 0.001 -> 0.0005" in lr and "finetune/3A: params.learning_rate 0.001 -> 0.0005" in lr
    )
    assert re.search(
        r"mask: 3A under prefill_bidir [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\] \(", lr
    ), lr
    # the sweep point of 5e-4 is the lr experiment, its runs restored: one row naming both
    assert lr.startswith("| results/exp/lr; results/exp/sweep-5.0e-4 (the same runs) |"), lr
    # sorted by that score, highest first; markdown written
    assert (wd / "runs.md").read_text().startswith("| tree | differs from base |")


def test_diff_names_the_upstream_key_that_made_an_evaluation_differ(experiments_loop):
    _, steps = experiments_loop
    out = steps["diff"]
    assert "config: same" in out and "upstream: 1 changed" in out
    assert "finetune/3A/summary.json" in out and "params.learning_rate 0.001 -> 0.0005" in out


def test_a_seed_equal_to_the_variants_own_is_that_run(experiments_loop):
    """`3A: {seeds: [5, 6]}`: seed 5 is the default's 3A (the base's jobs); seed 6's finetune and
    its two evaluations are the experiment's."""
    _, steps = experiments_loop
    got = jobs_said(steps["seeds"])
    assert got[("exp_seeds_finetune", "ran")] == 1 and got[("exp_seeds_eval_model", "ran")] == 2
    assert not [k for k in got if not k[0].startswith("exp_seeds_")]


def test_a_base_rerun_since_an_experiment_withholds_its_deltas(tmp_path):
    """The review's H4 on the toy study: an experiment's run records the base's records it was
    made from (experiment.json's base_runs, at the run's end); the base re-run under an edit,
    without the experiment, changes its record, and `ablate runs` withholds the experiment's
    deltas in one line naming the job; the experiment run again on the new base shows them."""
    from ablate.core.outputs.io import file_run_id
    from ablate.core.reports import runs
    from ablate.core.trees import experiments

    toy = Path(__file__).resolve().parents[1] / "toy_study"
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "wd" / "src"), str(toy)])}
    wd = copy_checkout(tmp_path / "wd")
    base = {"studies": ["toy"], "toy": {"bias": 0.8, "flips": 100}}
    (wd / "config/toy.yaml").write_text(yaml.safe_dump(base))
    (wd / "config/edited.yaml").write_text(yaml.safe_dump({**base, "toy": {"bias": 0.7}}))
    (wd / "b6.yaml").write_text(yaml.safe_dump({"experiments": {"b6": {"toy": {"bias": 0.6}}}}))

    def run(*args: str) -> None:
        r = snakemake(wd, "-c1", "--configfile", *args, env=env, timeout=900)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]

    def made() -> dict:
        text = (wd / "results/exp/b6" / experiments.DEFINITION).read_text()
        return json.loads(text)[experiments.BASE_RUNS]["flip"]

    def vs_base() -> list[str]:
        rows = {r["tree"][0]: r for r in runs.table_rows(wd, "results")}
        return rows["results/exp/b6"]["vs base"]

    # the base and the experiment in one run (`all` is every experiment's too): one Snakemake
    # start less; the experiment run alone on a base made before it is the last run below
    run("config/toy.yaml", "b6.yaml")
    first = made()
    assert first["run_id"] == file_run_id(wd / "results" / first["record"]) is not None
    assert vs_base() == []  # no score of the toy study differs: nothing withheld
    run("config/edited.yaml")  # the base re-run under an edit, the experiment left out
    now = file_run_id(wd / "results" / first["record"])
    assert now != first["run_id"] and made() == first
    assert vs_base() == [
        f"deltas withheld: the base's flip (run {first['run_id']} -> {now}) changed since this "
        "experiment was made from it; re-run it: `ablate exp run b6 --set toy.bias=0.6 "
        "--configfile config/toy.yaml`"
    ]
    run("config/edited.yaml", "b6.yaml", "--", "exp_b6_all")
    assert made()["run_id"] == now and vs_base() == []
