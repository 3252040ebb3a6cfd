"""The workflow without running it: lint, formatting, the planned jobs, the rule graph (seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from checkout import copy_checkout, snakemake
from helpers import dry_run_fields, files_of, job_counts, load_workflow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A copy without results: the full plan of a first run."""
    return copy_checkout(tmp_path_factory.mktemp("wf_dag"))


@pytest.fixture(scope="module")
def first_run(fresh):
    """`snakemake -n` in `fresh`, the embedded default's first run planned on this CPU machine
    (made before any test's `gpu_host`): one launch for the tests that read it."""
    return snakemake(fresh, "-n", timeout=180)


def test_lint_clean(fresh):
    r = snakemake(fresh, "--lint", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition!" in r.stdout + r.stderr, r.stdout


def test_snakefmt_clean():
    r = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_clean():
    """The Python code passes ruff's lint and format checks (settings in pyproject.toml)."""
    for args in (["check", "."], ["format", "--check", "."]):
        r = subprocess.run(
            [sys.executable, "-m", "ruff", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert r.returncode == 0, r.stdout + r.stderr


def test_first_run_plan(first_run):
    r = first_run
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    # 1 model, 1 data, 2 probes (one per training policy), 3 finetunes, (1 + 3) models x 2 policies
    # (the bridge study's jobs beside them: tests/bridge/test_pipeline.py)
    assert {k: v for k, v in counts.items() if not k.startswith(("plan", "bridge_"))} == {
        "make_data": 1,
        "prepare_model": 1,
        "leakage_probe": 2,
        "finetune": 3,
        "eval_model": 8,
        "recovery_table": 1,
        "plot_scores": 1,
        "plot_loss_curves": 1,
        "mask_claims": 1,
        "status": 1,
        "all": 1,
    }


def job_inputs(stdout: str) -> list[tuple[str, list[str]]]:
    """(rule, inputs) of every job a dry run lists."""
    jobs, rule = [], None
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif rule and line.strip().startswith("input:"):
            jobs.append((rule, [f.strip() for f in line.split(":", 1)[1].split(",")]))
            rule = None
    return jobs


@pytest.mark.parametrize(
    "model",
    ["embedded", *(pytest.param(m, marks=pytest.mark.slow) for m in ("hub", "local"))],
)
@pytest.mark.usefixtures("gpu_host")
def test_jobs_that_load_the_base_model_declare_its_files(
    fresh, first_run, tmp_path, tiny_model_dir, model
):
    """A Vast job gets its declared inputs only: every job that loads the base model declares
    the model's files when they are files (embedded or a local directory), not for a hub id.
    Embedded: the default's first run (`first_run`, its jobs ask for no GPU)."""
    r, res = first_run, "results"
    if model != "embedded":
        cfg = yaml.safe_load((fresh / "config" / "ministral3b.yaml").read_text())
        if model == "local":
            cfg["mask"]["model"]["path"] = str(tiny_model_dir)
        (fresh / "config" / f"{model}.yaml").write_text(yaml.safe_dump(cfg))
        res = cfg["results"]
        r = snakemake(fresh, "-n", "--configfile", f"config/{model}.yaml", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    base = {"embedded": "results/model/base/final", "local": str(tiny_model_dir)}.get(model)
    loaders = [
        (rule, inputs)
        for rule, inputs in job_inputs(r.stdout)
        # plan and all (every job's outputs) list it without loading it
        if f"{res}/model/base.json" in inputs and rule not in ("plan", "all")
    ]
    assert {rule for rule, _ in loaders} == {"leakage_probe", "finetune", "eval_model"}, loaders
    for rule, inputs in loaders:
        assert (base in inputs) if base else not any("model/base/" in f for f in inputs), (
            rule,
            inputs,
        )


@pytest.mark.parametrize("configfile, gpus", [(None, 0), ("config/ministral3b.yaml", 1)])
def test_cpu_rules_are_local_gpu_rules_declare_resources(fresh, configfile, gpus):
    wf = load_workflow(fresh, configfile)
    # hub data: no make_data; a pretrained model is registered on the submit host (the bridge
    # study's rules: tests/bridge/test_pipeline.py)
    mask_local = {r for r in wf._localrules if not r.startswith("bridge_")}
    assert mask_local == {
        "make_data",
        "recovery_table",
        "plot_scores",
        "plot_loss_curves",
        "mask_claims",
        "status",
    } - (set() if configfile is None else {"make_data"}) | (
        set() if configfile is None else {"prepare_model"}
    ) | {r.name for r in wf.rules if r.name.startswith("plan")}
    rules = {r.name: r for r in wf.rules}
    for name in ("leakage_probe", "finetune", "eval_model"):
        res = rules[name].resources
        for key in ("gpu", "mem_mb", "disk_mb", "runtime"):
            assert key in res, (name, key)
        assert res["gpu"] == gpus, name


def test_rulegraph_names_every_stage(fresh):
    r = snakemake(fresh, "--rulegraph", timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("digraph")
    for rule in (
        "make_data",
        "prepare_model",
        "leakage_probe",
        "finetune",
        "eval_model",
        "recovery_table",
        "plot_scores",
        "plot_loss_curves",
        "mask_claims",
    ):
        assert f'label = "{rule}"' in r.stdout, rule


def test_readme_commands_and_ci_agree():
    """.ci/run runs the README's install lines but the run (`snakemake -c2`, every default
    target), then its test lines but the fast tier, in the README's order, and last the whole
    suite (`-m ""`): no other command, and a README edit that CI does not follow fails here."""
    import re

    readme = (ROOT / "README.md").read_text()

    def lines(section: str) -> list[str]:
        text = readme.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
        (block,) = re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)
        return [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines()]

    install, tests = lines("Install and run"), lines("Tests")
    assert install[-1] == ".venv/bin/snakemake -c2"  # every default target
    *test_install, fast, suite = tests
    assert fast == ".venv/bin/python -m pytest -n 2 --dist loadgroup"  # plain pytest: fast tier
    assert suite == '.venv/bin/python -m pytest -m "" -n 2 --dist loadgroup'  # the whole suite
    ci = (ROOT / ".ci" / "run").read_text()
    commands = ci.split("\nstatus=0\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert commands == [*install[:-1], *test_install, f"{suite} || status=$?"], commands
    assert "set -euo pipefail" in ci and '"$status" -eq 5' in ci


def test_the_real_studys_sft_dataset_enters_the_key_at_its_commit(fresh):
    """The finetune's and the probe's params (the run cache's key) name the hub SFT dataset's
    commit from the lock file, so a dataset moved upstream is a new key, not a restore."""
    from ablate.core.outputs import hub_revisions
    from ablate.core.reruns import runcache

    lock = fresh / "results" / "ministral3b" / hub_revisions.LOCK
    lock.parent.mkdir(parents=True, exist_ok=True)
    sha = "c" * 40
    lock.write_text(json.dumps({"datasets/yahma/alpaca-cleaned@main": {"sha": sha}}))
    try:
        wf = load_workflow(fresh, "config/ministral3b.yaml")
        for rule, wildcards in (
            ("finetune", {"variant": "3A"}),
            ("leakage_probe", {"policy": "causal"}),
        ):
            job = runcache.rule_job(wf.get_rule(rule), wildcards)
            assert job.params.sft["sft"] == f"yahma/alpaca-cleaned@{sha}", rule
    finally:
        lock.unlink()


def test_the_real_studys_task_datasets_enter_the_key_at_their_commit(fresh):
    """The evaluation's params (the run cache's key, the slice its record holds) name each lm-eval
    task's hub dataset at its commit from the lock file (the real lm-eval task index)."""
    from ablate.core.outputs import hub_revisions
    from ablate.core.reruns import runcache

    lock = fresh / "results" / "ministral3b" / hub_revisions.LOCK
    lock.parent.mkdir(parents=True, exist_ok=True)
    sha = "d" * 40
    lock.write_text(json.dumps({"datasets/allenai/ai2_arc@main": {"sha": sha}}))
    try:
        wf = load_workflow(fresh, "config/ministral3b.yaml")
        job = runcache.rule_job(wf.get_rule("eval_model"), {"model": "base", "policy": "causal"})
        pins = job.params.eval["datasets"]
        assert pins["arc_challenge"] == {
            "path": "allenai/ai2_arc",
            "name": "ARC-Challenge",
            "revision": sha,
        }
        assert (
            pins["arc_easy"]["revision"] == sha and pins["hellaswag"]["path"] == "Rowan/hellaswag"
        )
        # the lock travels with every job that loads pinned hub data (Vast ships declared inputs
        # only and the job re-parses the workflow there)
        where = str(lock.relative_to(fresh))
        assert job.input.hub_revisions == where
        for rule, wc in (("finetune", {"variant": "3B"}), ("leakage_probe", {"policy": "causal"})):
            assert runcache.rule_job(wf.get_rule(rule), wc).input.hub_revisions == where, rule
    finally:
        lock.unlink()


def job_files(stdout: str) -> list[dict[str, list[str]]]:
    """Each job a dry run prints: its input and output files."""
    return [
        {k: [os.path.normpath(f) for f in files_of(fields.get(k, ""))] for k in ("input", "output")}
        for _, fields in dry_run_fields(stdout)
    ]


@pytest.mark.parametrize(
    "files", [["config/config.yaml"], ["config/config.yaml", "config/seeds3.yaml"]]
)
def test_each_jobs_upstream_is_what_its_rule_reads(fresh, files):
    """The job list's upstream of each job (STATUS calls a job stale from it, the planner orders
    jobs by it) names exactly the jobs whose files its Snakemake job reads, in the default and in
    an overlay with seeds: an upstream job the rule does not read made STATUS call a job stale
    that `snakemake -n` does not plan (the claims over seeds), one it reads and the list leaves
    out made STATUS say done where Snakemake reruns."""
    from ablate import studies
    from ablate.core.planner.inputs import load_config

    r = snakemake(fresh, "-n", "--configfile", *files, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    config = load_config([fresh / f for f in files])
    jobs = [j for s in config["studies"] for j in studies.side(s, "layout").jobs(config)]
    maker = {os.path.normpath(f): (j.study, j.name) for j in jobs for f in j.outputs.values()}
    reads = {}
    for planned in job_files(r.stdout):
        if (job := maker.get(next(iter(planned["output"]), ""))) is not None:
            reads[job] = {maker[f] for f in planned["input"] if f in maker} - {job}
    assert set(reads) == set(maker.values())  # a first run: every job planned
    wrong = {
        job: (sorted(reads[(j.study, j.name)]), sorted((j.study, u) for u in j.upstream))
        for j in jobs
        if reads[job := (j.study, j.name)] != {(j.study, u) for u in j.upstream}
    }
    assert not wrong, wrong
