"""``ablate exp rm`` (:mod:`ablate.core.trees.exp_rm`): an experiment, or a whole sweep, removed
with its trees and overlay entries; under a live run's lock, or for a name that is none, one line
and nothing removed. No command removed an experiment before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from ablate import cli
from ablate.core.trees import results_lock

ROOT = Path(__file__).resolve().parents[3]


def checkout(tmp_path: Path, monkeypatch) -> Path:
    """A working directory with the default config, a sweep's overlay and one experiment's,
    each with its tree."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text((ROOT / "config/config.yaml").read_text())
    (tmp_path / "experiments").mkdir()
    sweep = {"sweep-1": {"seed": 1}, "sweep-2": {"seed": 2}}
    (tmp_path / "experiments/sweep.yaml").write_text(yaml.safe_dump({"experiments": sweep}))
    (tmp_path / "experiments/lr.yaml").write_text(yaml.safe_dump({"experiments": {"lr": {}}}))
    for name in ("sweep-1", "sweep-2", "lr"):
        (tmp_path / "results/exp" / name).mkdir(parents=True)
        (tmp_path / "results/exp" / name / "experiment.json").write_text("{}")
    return tmp_path


def test_a_sweep_and_one_of_its_points_are_removed_with_their_trees(tmp_path, monkeypatch, capsys):
    wd = checkout(tmp_path, monkeypatch)
    assert cli.main(["exp", "rm", "sweep-2"]) == 0
    assert not (wd / "results/exp/sweep-2").exists() and (wd / "results/exp/sweep-1").is_dir()
    left = yaml.safe_load((wd / "experiments/sweep.yaml").read_text())["experiments"]
    assert list(left) == ["sweep-1"]
    assert cli.main(["exp", "rm", "sweep"]) == 0
    assert not (wd / "experiments/sweep.yaml").exists()
    assert not (wd / "results/exp/sweep-1").exists() and (wd / "results/exp/lr").is_dir()
    assert "removed results/exp/sweep-1/" in capsys.readouterr().out


def test_an_unknown_name_is_refused_naming_the_experiments_there(tmp_path, monkeypatch, capsys):
    wd = checkout(tmp_path, monkeypatch)
    assert cli.main(["exp", "rm", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate exp rm: no experiment 'nope'") and err.count("\n") == 1, err
    assert "lr, sweep, sweep-1, sweep-2" in err
    assert (wd / "results/exp/lr").is_dir()


def test_a_live_runs_lock_keeps_every_tree(tmp_path, monkeypatch, capsys):
    """A run of the base's DAG (this process's parent stands in: a live process) holds the lock:
    nothing is removed, one line names the holder."""
    wd = checkout(tmp_path, monkeypatch)
    holder = {**results_lock.this_holder(), "pid": os.getppid()}
    holder["started"] = results_lock.start_time(os.getppid())
    (wd / "results" / results_lock.LOCK_NAME).write_text(json.dumps(holder))
    r = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "exp", "rm", "lr"],
        cwd=wd,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("ablate exp rm: "), r.stderr
    assert (wd / "results/exp/lr").is_dir() and (wd / "experiments/lr.yaml").is_file()
