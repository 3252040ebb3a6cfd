"""docs/own-task.md, "Add your own task", walked through: its task YAML, jsonl and config overlay
(read from the page) in a copy of the workflow, added to the embedded default's tasks: the dry
run plans the task's evaluations under every policy, feeding the recovery table; a misspelled
name fails the dry run naming the key; an edit of the YAML reruns the evaluations and what reads
them, nothing else (the parse-time check of own tasks: tests/mask/test_tasks.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from checkout import copy_checkout, snakemake
from helpers import own_task_files, write_own_task

from ablate.core import planner
from ablate.mask import layout
from ablate.mask import variants as mask_variants

ROOT = Path(__file__).resolve().parents[2]
#: the overlay after the embedded default, the mask study alone (the bridge's jobs are not read)
ARGS = ("--configfile", "config/config.yaml", "my-task.yaml", "--config", "studies=[mask]")


def jobs_of(stdout: str) -> list[dict[str, str]]:
    """Each job a dry run lists: its rule and fields (input, output, reason, ...)."""
    jobs, job = [], None
    for line in stdout.splitlines():
        m = re.match(r"(?:local)?rule (\w+):$", line)
        if m:
            job = {"rule": m.group(1)}
            jobs.append(job)
        elif job is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            job[key] = value
        else:
            job = None
    return jobs


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    wd = copy_checkout(tmp_path_factory.mktemp("own_task"))
    write_own_task(wd)
    return wd


def test_the_page_names_the_three_files():
    assert sorted(own_task_files()) == [
        "my-task.yaml",
        "my_tasks/count_up.jsonl",
        "my_tasks/count_up.yaml",
    ]


@pytest.mark.slow  # 5 s (a dry run, the job list)
def test_the_task_is_evaluated_under_every_policy_and_feeds_the_recovery_table(example):
    r = snakemake(example, "-n", *ARGS, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = jobs_of(r.stdout)
    config = planner.load_config([example / "config/config.yaml", example / "my-task.yaml"])
    assert "count_up" in [t["name"] for t in config["mask"]["eval"]["tasks"]]
    listed = [j for j in layout.jobs(config) if j.rule == "eval_model"]
    # base and every finetune, each under causal and the ablated policy
    assert {(j.labels["model"], j.labels["policy"]) for j in listed} == {
        (m, p)
        for m in ["base", *mask_variants.variants_of(config)]
        for p in ("causal", "prefill_bidir")
    }
    evals = [j for j in jobs if j["rule"] == "eval_model"]
    assert len(evals) == len(listed)
    for j in evals:  # the task's YAML and its data are inputs of each
        inputs = j["input"].split(", ")
        assert {"my_tasks/count_up.yaml", "my_tasks/count_up.jsonl"} <= set(inputs), j
    (table,) = [j for j in jobs if j["rule"] == "recovery_table"]
    assert {j.outputs["metrics"] for j in listed} <= set(table["input"].split(", "))


def test_a_misspelled_task_fails_the_dry_run_naming_the_key(example, tmp_path):
    overlay = (example / "my-task.yaml").read_text().replace("name: count_up", "name: count_upp")
    (example / "typo.yaml").write_text(overlay)
    r = snakemake(example, "-n", *ARGS[:2], "typo.yaml", *ARGS[3:], timeout=300)
    assert r.returncode != 0
    assert (
        "invalid config at mask.eval.tasks: count_upp is not an embedded task nor in "
        "mask.eval.task_dirs (did you mean 'count_up'?)"
    ) in r.stdout + r.stderr


def test_a_missing_task_folder_fails_the_dry_run_naming_the_key(example):
    overlay = (example / "my-task.yaml").read_text().replace("[my_tasks]", "[my_taks]")
    (example / "nofolder.yaml").write_text(overlay)
    r = snakemake(example, "-n", *ARGS[:2], "nofolder.yaml", *ARGS[3:], timeout=300)
    assert r.returncode != 0
    assert "invalid config at mask.eval.task_dirs: my_taks is not a folder" in r.stdout + r.stderr


def test_a_task_yaml_whose_task_is_not_text_fails_the_dry_run_naming_file_and_key(example):
    """`task: [count_up]` (lm-eval's group form) stopped the parse with a TypeError (unhashable
    type: 'list') naming neither the file nor the key."""
    bad = example / "bad_tasks"
    bad.mkdir()
    for name in ("count_up.yaml", "count_up.jsonl"):
        text = (example / "my_tasks" / name).read_text()
        (bad / name).write_text(text.replace("task: count_up", "task: [count_up]"))
    overlay = (example / "my-task.yaml").read_text().replace("[my_tasks]", "[bad_tasks]")
    (example / "listtask.yaml").write_text(overlay)
    r = snakemake(example, "-n", *ARGS[:2], "listtask.yaml", *ARGS[3:], timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert (
        "invalid config at mask.eval.task_dirs: bad_tasks/count_up.yaml: the key 'task' is "
        "['count_up'], not a task name: write one name as text"
    ) in out, out
    assert "TypeError" not in out and "Traceback" not in out, out


def finished(wd: Path) -> None:
    """Every output the dry run lists made (empty; a path without a suffix a folder) and marked
    done by `snakemake --touch`: a finished run's state, without running a job."""
    r = snakemake(wd, "-n", *ARGS, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for job in jobs_of(r.stdout):
        for p in filter(None, job.get("output", "").split(", ")):
            path = wd / p
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            else:
                path.mkdir(parents=True, exist_ok=True)
    r = snakemake(wd, "--touch", "-c1", *ARGS, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_editing_the_task_reruns_exactly_the_evaluations_and_what_reads_them(tmp_path):
    wd = copy_checkout(tmp_path / "wd")
    write_own_task(wd)
    finished(wd)
    r = snakemake(wd, "-n", *ARGS, timeout=300)
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout + r.stderr
    yaml = wd / "my_tasks/count_up.yaml"
    yaml.write_text(yaml.read_text().replace("test_split: test", "test_split: test  # edited"))
    r = snakemake(wd, "-n", *ARGS, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = jobs_of(r.stdout)
    evals = [j for j in jobs if j["rule"] == "eval_model"]
    config = planner.load_config([wd / "config/config.yaml", wd / "my-task.yaml"])
    assert len(evals) == len([j for j in layout.jobs(config) if j.rule == "eval_model"])
    for j in evals:
        assert j["reason"] == "Updated input files: my_tasks/count_up.yaml", j
    rest = [j for j in jobs if j["rule"] != "eval_model"]
    # no data, model, probe or finetune: only what reads the evaluations
    assert {j["rule"] for j in rest} <= {
        "recovery_table",
        "mask_claims",
        "plot_scores",
        "plan",
        "status",
        "all",
    }
    for j in rest:
        assert j["reason"].startswith("Input files updated by another job"), j


@pytest.mark.slow
def test_editing_data_a_task_reaches_through_data_dir_reruns_the_evaluations(tmp_path):
    """G8: the data of a task YAML's data_dir was no input of the evaluations: an edit reran
    nothing (and the run cache's key, over the declared inputs, kept the old result's)."""
    wd = copy_checkout(tmp_path / "wd")
    write_own_task(wd)
    yaml = wd / "my_tasks/count_up.yaml"
    yaml.write_text(
        yaml.read_text().replace("data_files: {test: count_up.jsonl}", "data_dir: data")
    )
    yaml.write_text(yaml.read_text().replace("test_split: test", "test_split: train"))
    (wd / "my_tasks/data").mkdir()
    (wd / "my_tasks/count_up.jsonl").rename(wd / "my_tasks/data/count_up.jsonl")
    finished(wd)
    data = wd / "my_tasks/data/count_up.jsonl"
    data.write_text(data.read_text().replace("nine two one", "nine two two"))
    r = snakemake(wd, "-n", *ARGS, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    evals = [j for j in jobs_of(r.stdout) if j["rule"] == "eval_model"]
    config = planner.load_config([wd / "config/config.yaml", wd / "my-task.yaml"])
    assert len(evals) == len([j for j in layout.jobs(config) if j.rule == "eval_model"])
    for j in evals:
        assert j["reason"] == "Updated input files: my_tasks/data/count_up.jsonl", j
