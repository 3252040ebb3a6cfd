"""Results trees (:mod:`ablate.core.trees.results_trees`): which folders are trees and which files
their records, the keys two trees differ in, where, when and with which code a tree ran, and the
start's one-line warning about records another configuration wrote."""

from __future__ import annotations

from pathlib import Path

from tree_records import EVAL, EVAL_SLICE, record

from ablate.core.outputs.checkpoint_integrity import MANIFEST_NAME
from ablate.core.trees import experiments, results_trees
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
