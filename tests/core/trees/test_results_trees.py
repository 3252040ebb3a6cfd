"""Results trees (:mod:`ablate.core.trees.results_trees`): which folders are trees and which files
their records, the keys two trees differ in, where, when and with which code a tree ran, and the
start's one-line warning about records another configuration wrote, and the parse-time refusal of a
results folder inside another tree's files."""

from __future__ import annotations

import json
from pathlib import Path

from checkout import copy_checkout, snakemake
from tree_records import EVAL, EVAL_SLICE, record

from ablate.core.outputs.checkpoint_integrity import MANIFEST_NAME
from ablate.core.trees import experiments, results_origin, results_trees
from ablate.core.trees.results_trees import Tree


def test_records_found_where_a_run_writes_them(tmp_path):
    tree = tmp_path / "out"
    record(tree, EVAL, EVAL_SLICE, when="2026-11-26T09:00:00+0000")
    record(tree, "finetune/3A/summary.json", {"max_steps": 3}, when="2026-11-26T11:00:00+0000")
    # an earlier run's copy, a JSON file without a history copy and a checkpoint's JSON are no
    # records of the tree
    record(tree, "eval/base/causal/history/old.metrics.json", {"seed": 9})
    (tree / "eval/base/causal/tokenizer.json").write_text('{"provenance": {"config": {}}}')
    record(tree, "finetune/3A/final/config.json", {"x": 1})
    (tree / "finetune/3A/final" / MANIFEST_NAME).write_text("{}")
    # a folder without logs/ is no results tree: its records are its parent's
    record(tmp_path / "elsewhere", "a.json", {"y": 1})
    (tmp_path / "elsewhere/logs").rmdir()
    (trees,) = [t for t in results_trees.find_trees(tmp_path) if t.path == tree]
    assert sorted(trees.records) == [EVAL, "finetune/3A/summary.json"]
    assert [t.path for t in results_trees.find_trees(tmp_path)] == [tree]
    assert results_trees.newest(trees) == "2026-11-26T11:00:00+0000"


def test_start_warning_names_another_configurations_records(tmp_path, monkeypatch):
    """rules/common.smk's onstart line: the records of the results folder no job of this run
    writes (a nested tree's records are that tree's; a folder output holds its files)."""
    monkeypatch.chdir(tmp_path)
    record(Path("results"), EVAL, EVAL_SLICE)
    record(Path("results"), "bridge/runs/x/summary.json", {"k": 8})
    record(Path("results/other"), EVAL, EVAL_SLICE)
    outputs = [f"results/{EVAL}", "results/bridge/runs/x"]
    both = ["mask", "bridge"]
    assert results_trees.mixed_warning("results", outputs, both) is None
    for seed in (6, 7, 8, 9):
        record(Path("results"), f"finetune/3A-s{seed}/summary.json", {"seed": seed})
    # a run of the bridge study alone reads and replaces none of the mask study's files
    assert results_trees.mixed_warning("results", ["results/bridge/runs/x"], ["bridge"]) is None
    msg = results_trees.mixed_warning("results", outputs, both)
    assert msg.startswith(
        "warning: results/ holds 4 records no job of this configuration writes "
        "(finetune/3A-s6/summary.json, finetune/3A-s7/summary.json, "
        "finetune/3A-s8/summary.json, ...): another configuration wrote into"
    )
    assert "\n" not in msg and results_trees.mixed_warning("nothing-here", outputs, both) is None


def test_an_experiments_tree_is_one_before_it_holds_a_record(tmp_path):
    (tmp_path / "results/exp/lr/logs").mkdir(parents=True)
    (tmp_path / "results/exp/other/logs").mkdir(parents=True)  # neither record nor definition
    (tmp_path / "results/exp/lr" / experiments.DEFINITION).write_text('{"changes": []}')
    (tree,) = results_trees.find_trees(tmp_path)
    assert tree.path == tmp_path / "results/exp/lr" and tree.records == {}
    assert results_trees.experiment_of(tree) == {"changes": []}
    assert results_trees.newest(tree) == ""


def _tree(path, records: dict) -> Tree:
    """A tree holding ``records``, filled in as find_trees fills one."""
    tree = Tree(path)
    tree.records.update(records)
    return tree


def _prov(config, host="box", gpus=(), commit="abcdef0123456789", dirty=False, cpu="Intel Xeon"):
    hw = {"hostname": host, "cpu_model": cpu, "torch_cpu_capability": "AVX2"}
    return {"config": config, "git": {"commit": commit, "dirty": dirty},
            "hardware": {**hw, **({"gpus": list(gpus)} if gpus else {})}}  # fmt: skip


def test_differences_name_each_changed_key_once_with_its_count(tmp_path):
    base = _tree(tmp_path / "a", {
        "eval/x/m.json": _prov({"seed": 0, "tasks": ["t"]}),
        "eval/y/m.json": _prov({"seed": 0, "tasks": ["t"]}),
        "only/base.json": _prov({}),
    })  # fmt: skip
    tree = _tree(tmp_path / "b", {
        "eval/x/m.json": _prov({"seed": 1, "tasks": ["t"]}),
        "eval/y/m.json": _prov({"seed": 1, "tasks": ["t"]}),
        "only/here.json": _prov({}),
        "only/here2.json": _prov({}),
    })  # fmt: skip
    assert results_trees.differences(base, tree) == [
        "eval/x: seed 0 -> 1",
        "eval/y: seed 0 -> 1",
        "2 records not in base",
        "1 records of base not here",
    ]
    same = _tree(
        tmp_path / "c", {"eval/x/m.json": _prov({"seed": 0}), "eval/x/n.json": _prov({"seed": 0})}
    )
    other = _tree(
        tmp_path / "d", {"eval/x/m.json": _prov({"seed": 2}), "eval/x/n.json": _prov({"seed": 2})}
    )
    assert results_trees.differences(same, other) == ["eval/x: seed 0 -> 2 (2 records)"]
    assert results_trees.differences(same, same) == []


def test_where_and_commits_count_the_records_per_host_and_per_code(tmp_path):
    tree = _tree(tmp_path, {
        "a.json": _prov({}, host="gpu1", gpus=[{"name": "H100"}, {"name": "H100"}]),
        "b.json": _prov({}, host="gpu1", gpus=[{"name": "H100"}]),
        "c.json": _prov({}, host="laptop", dirty=True),
        "d.json": {"config": {}},  # a record without hardware or git
    })  # fmt: skip
    assert results_trees.where(tree) == [
        "gpu1 (H100): 2",
        "laptop (Intel Xeon AVX2): 1",
        "? (unknown device): 1",
    ]
    assert results_trees.commits(tree) == ["abcdef0123: 2", "abcdef0123+dirty: 1", "?: 1"]


def test_a_folder_in_another_results_tree_is_refused(tmp_path, monkeypatch):
    """A configuration's results folder inside another results tree's files: an experiment's
    tree (results/exp/<name>, which `ablate exp run` writes; the review's overlay `results:
    results/exp/lr-5.0e-4` rewrote its recovery.csv), a folder in one, or a folder of a base
    tree its own jobs write. A folder of another name inside a tree is one of its own (the
    shipped configs' results/ministral3b); the experiment's own run writes its tree, unless
    another configuration made that folder."""
    monkeypatch.chdir(tmp_path)
    results_origin.record("results", tmp_path)  # a base tree, as a run's start writes it
    (tmp_path / "results/exp/lr-5.0e-4").mkdir(parents=True)
    (tmp_path / "results/exp/lr-5.0e-4" / experiments.DEFINITION).write_text("{}")
    exp = "is the results tree of experiment lr-5.0e-4 of results/ (`ablate exp run` writes it)"
    fix = "give this configuration a results folder of its own"
    for value, says in [
        ("results/exp/lr-5.0e-4", f"results/exp/lr-5.0e-4 {exp}: a run of another"),
        ("./results/exp/lr-5.0e-4/", f"./results/exp/lr-5.0e-4/ {exp}: a run of another"),
        ("results/exp/lr-5.0e-4/x", "results/exp/lr-5.0e-4/x lies in results/exp/lr-5.0e-4/, "),
        ("results/exp/new", "results/exp/new is the results tree of experiment new of results/"),
        ("results/exp", "results/exp lies in results/exp/ of the results tree results/ ("),
        ("results/finetune/3A", "results/finetune/3A lies in results/finetune/ of the results "),
    ]:
        message = results_trees.nesting_error(value)
        assert message.startswith(f"invalid config at results: {says}"), message
        assert fix in message and "\n" not in message, message
    for value in ("results", "results/ministral3b", "other/exp/lr", "exp/lr", "../results"):
        assert results_trees.nesting_error(value) is None, value
    # the runner's own run of an experiment: its marker names it and its base
    marker = {"name": "lr-5.0e-4", "base": {"results": "results"}, "set": {}}
    assert results_trees.nesting_error("results/exp/lr-5.0e-4", marker) is None
    other = {**marker, "name": "lr"}
    assert results_trees.nesting_error("results/exp/lr-5.0e-4", other).startswith(
        f"invalid config at results: results/exp/lr-5.0e-4 {exp}"
    )
    assert results_trees.nesting_error("results/exp/lr-5.0e-4", {"name": "x", "base": {}})
    # a folder another configuration made where an experiment's tree would go
    results_origin.record("results/exp/mine", tmp_path)
    assert results_trees.nesting_error("results/exp/mine", {**marker, "name": "mine"}) == (
        "invalid config at experiments.mine: its results tree results/exp/mine/ is another "
        "configuration's results folder (results/exp/mine/.origin.json), which the experiment "
        "would rewrite; give the experiment another name, or move that folder"
    )


def test_an_experiments_tree_as_a_configurations_results_fails_the_dry_run(tmp_path):
    """The review's H7 through Snakemake: an overlay whose `results:` is an experiment's tree
    planned 45 jobs there; now the dry run stops in one line. The experiment's own run of the
    same tree (`ablate exp run`'s overlay) plans as before."""
    wd = copy_checkout(tmp_path / "wd")
    (wd / "results").mkdir()
    (wd / "results" / results_origin.ORIGIN_NAME).write_text(
        json.dumps({"results": "results", "workdir": str(wd)})
    )
    (wd / "results/exp/lr").mkdir(parents=True)
    (wd / "results/exp/lr" / experiments.DEFINITION).write_text('{"name": "lr"}')
    r = snakemake(wd, "-n", "--config", "studies=[mask]", "results=results/exp/lr", timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert (
        "invalid config at results: results/exp/lr is the results tree of experiment lr of "
        "results/ (`ablate exp run` writes it)"
    ) in out, out
    assert "Building DAG" not in out and "Traceback" not in out, out
    lr = {"mask": {"finetune": {"variants": {"3A": {"learning_rate": 5.0e-4}}}}}
    (wd / "lr.yaml").write_text(json.dumps({"experiments": {"lr": lr}}))
    r = snakemake(wd, "-n", "--configfile", "config/config.yaml", "lr.yaml", "--", "exp_lr_all")
    assert r.returncode == 0 and "exp_lr_finetune" in r.stdout, r.stdout + r.stderr


def test_a_link_into_another_results_tree_is_judged_where_it_leads(tmp_path, monkeypatch):
    """`ln -s results/exp/lr-5.0e-4 lnk` with an overlay `results: lnk` planned and rewrote the
    experiment's tree, and `results: lnk3/x` with lnk3 -> results/finetune wrote in the base's
    own folder: the nesting check read the path as written. Now symlinks are resolved first,
    and the line names the link and where it leads; a link to a tree of its own passes, and so
    does an experiment's own run through a link to its base."""
    monkeypatch.chdir(tmp_path)
    results_origin.record("results", tmp_path)
    (tmp_path / "results/exp/lr-5.0e-4").mkdir(parents=True)
    (tmp_path / "results/exp/lr-5.0e-4" / experiments.DEFINITION).write_text("{}")
    Path("lnk").symlink_to("results/exp/lr-5.0e-4")
    Path("lnk3").symlink_to("results/finetune")
    Path("abs").symlink_to(tmp_path / "results/exp")
    Path("base").symlink_to("results")
    exp = "the results tree of experiment lr-5.0e-4 of results/ (`ablate exp run` writes it)"
    for value, says in [
        ("lnk", f"lnk (a link to results/exp/lr-5.0e-4) is {exp}"),
        ("lnk/x", f"lnk/x (a link to results/exp/lr-5.0e-4/x) lies in results/exp/lr-5.0e-4/, {exp}"),
        ("abs/lr-5.0e-4", f"abs/lr-5.0e-4 (a link to results/exp/lr-5.0e-4) is {exp}"),
        ("lnk3/x", "lnk3/x (a link to results/finetune/x) lies in results/finetune/ of the results tree results/ ("),
        (str(tmp_path / "lnk"), f"{tmp_path}/lnk (a link to {tmp_path}/results/exp/lr-5.0e-4) is "
         f"the results tree of experiment lr-5.0e-4 of {tmp_path}/results/"),
    ]:  # fmt: skip
        message = results_trees.nesting_error(value)
        assert message and message.startswith(f"invalid config at results: {says}"), message
    assert results_trees.nesting_error("base") is None
    assert results_trees.nesting_error("base/ministral3b") is None
    marker = {"name": "lr-5.0e-4", "base": {"results": "base"}, "set": {}}
    assert results_trees.nesting_error("base/exp/lr-5.0e-4", marker) is None
