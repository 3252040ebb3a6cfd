"""``ablate exp run`` (:mod:`ablate.core.trees.exp_run`) without running Snakemake: --set entries
as experiments (a sweep's points, their product, a bracketed value kept whole), their names, the
overlay written and the one snakemake command it runs, and the one-line refusals before any job."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from ablate import cli
from ablate.core.config import ConfigError
from ablate.core.trees import exp_run
from ablate.core.trees import experiments as E

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
LR = "mask.finetune.defaults.learning_rate"


def test_set_and_sweep_names():
    points = exp_run.parse_set(["a.b=1.0e-4,5.0e-4", "c=[1, 2]", "d=x"])
    assert points == [
        {"a.b": 1.0e-4, "c": [1, 2], "d": "x"},
        {"a.b": 5.0e-4, "c": [1, 2], "d": "x"},
    ]
    typed = exp_run.parse_set(["a.b=1.0e-4,5.0e-4", "c=[1, 2]"], as_typed=True)
    assert exp_run.sweep_names("lr", typed) == ["lr-1.0e-4", "lr-5.0e-4"]
    assert exp_run.sweep_names("lr", [{"x": "a/b"}, {"x": "a b"}]) == ["lr-1", "lr-2"]
    assert exp_run.sweep_names("one", [{"x": 1}]) == ["one"]
    assert exp_run.nested({"a.b": 1, "a.c": 2}) == {"a": {"b": 1, "c": 2}}
    with pytest.raises(ConfigError, match=r"--set lr: write KEY=VALUE"):
        exp_run.parse_set(["lr"])


def test_exp_run_refuses_before_snakemake(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(DEFAULT))
    bad = ["exp", "run", "lr", "--set", "mask.finetune.defaults.learnin_rate=1.0e-4"]
    assert cli.main(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate exp: experiments.lr: invalid config at mask.finetune.defaults")
    assert "\n" == err[-1] and err.count("\n") == 1
    assert not (tmp_path / E.OVERLAYS).exists()


def test_several_sweeps_are_their_product_in_order():
    points = exp_run.parse_set(["a=1,2", "b=x,y"])
    assert points == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]
    assert exp_run.parse_set(["m={k: 1, j: 2}"]) == [{"m": {"k": 1, "j": 2}}]  # one value
    assert exp_run.nested({"a.b.c": 1, "a.d": 2, "e": 3}) == {"a": {"b": {"c": 1}, "d": 2}, "e": 3}


@pytest.mark.parametrize(
    "entry, says",
    [("=1", "write KEY=VALUE"), ("a..b=1", "write KEY=VALUE"), ("a.=1", "write KEY=VALUE"),
     ("a=[1, 2", "not valid YAML at its end")],
)  # fmt: skip
def test_a_bad_set_entry_is_refused_in_one_line(entry, says):
    with pytest.raises(ConfigError) as err:
        exp_run.parse_set([entry])
    assert str(err.value).startswith(f"--set {entry}: {says}") and "\n" not in str(err.value)


def test_sweep_names_fall_back_to_numbers_where_two_would_be_one_folder():
    assert exp_run.sweep_names("s", [{"k": "a/b", "n": 1}, {"k": "a_b", "n": 1}]) == ["s-1", "s-2"]
    two = [{"k": 1, "m": "x"}, {"k": 2, "m": "y"}]
    assert exp_run.sweep_names("s", two) == ["s-1-x", "s-2-y"]  # each varied key, in order


def _base(tmp_path: Path, monkeypatch) -> list:
    """A checkout's base config in ``tmp_path`` (the cwd); the commands exp run starts."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(DEFAULT))
    started = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: started.append(cmd) or 0)
    return started


def test_a_sweep_is_one_overlay_and_one_snakemake_run(tmp_path, monkeypatch, capsys):
    started = _base(tmp_path, monkeypatch)
    assert cli.main(["exp", "run", "lr", "--set", f"{LR}=1.0e-4,5.0e-4", "-n", "--", "-p"]) == 0
    overlay = f"{E.OVERLAYS}/lr.yaml"
    written = yaml.safe_load((tmp_path / overlay).read_text())["experiments"]
    assert list(written) == ["lr-1.0e-4", "lr-5.0e-4"]
    assert written["lr-5.0e-4"] == {"mask": {"finetune": {"defaults": {"learning_rate": 5.0e-4}}}}
    (cmd,) = started
    names = [f"{E.rule_prefix(n)}all" for n in written]
    assert cmd[1:] == ["-m", "snakemake", "-c", "2", "-n", *names, "--configfile",
                       "config/config.yaml", overlay, "-p"]  # fmt: skip
    assert capsys.readouterr().out.startswith("ablate exp: lr-1.0e-4, lr-5.0e-4 in ")


def test_nothing_to_change_is_refused_before_snakemake(tmp_path, monkeypatch, capsys):
    started = _base(tmp_path, monkeypatch)
    assert cli.main(["exp", "run", "lr"]) == 2
    assert capsys.readouterr().err == (
        "ablate exp: ablate exp run: give the keys it changes: --set KEY=VALUE or --file\n"
    )
    assert started == [] and not (tmp_path / E.OVERLAYS).exists()


@pytest.mark.parametrize(
    "content, says",
    [("- a\n- b\n", "holds a list of 2 items, not config keys"),
     ("5\n", "holds the single value 5, not config keys"),
     (b"\xc4\x80\xff\x00", "not UTF-8 text (byte 2 is 0xff")],
)  # fmt: skip
def test_a_file_of_no_config_keys_is_refused_in_one_line(
    tmp_path, monkeypatch, capsys, content, says
):
    """``--file list.yaml`` (a YAML list) was an AttributeError, a number a TypeError, a binary
    file a UnicodeDecodeError: each is one line naming the file, before Snakemake."""
    started = _base(tmp_path, monkeypatch)
    over = tmp_path / "over.yaml"
    over.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert cli.main(["exp", "run", "lr", "--file", str(over), "-n"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate exp: {over}: {says}") and err.count("\n") == 1, err
    assert started == [] and not (tmp_path / E.OVERLAYS).exists()


@pytest.mark.parametrize(
    "entries",
    [["a.b=1", "a.b=2"], ["a.b=1,2", "a.b=3"], ["a.b={c: 1}", "a.b.c=2"], ["a.b.c=1", "a.b=2"]],
)
def test_a_key_set_twice_is_refused_naming_both_entries(entries):
    """``--set`` of one key twice kept the last silently (and a key inside another's,
    ``a.b`` then ``a.b.c``, was an AttributeError)."""
    with pytest.raises(ConfigError) as err:
        exp_run.parse_set(entries)
    first, second = entries
    assert str(err.value).startswith(f"--set {first} and --set {second} set ")
    assert "give each key once" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "key, entry, value",
    [(LR, f"{LR}=5.0e-4", "0.0001"),
     (LR, f"{LR}=5.0e-4,1.0e-3", "0.0001"),
     (LR, "mask.finetune.defaults={learning_rate: 5.0e-4, max_steps: 5}", "0.0001"),
     ("mask.finetune.defaults", "mask.finetune.defaults=5", '{"learning_rate": 0.0001}')],
)  # fmt: skip
def test_a_key_in_both_file_and_set_is_refused_naming_both_values(
    tmp_path, monkeypatch, capsys, key, entry, value
):
    """``--file F.yaml --set K=V`` where F sets K too kept the ``--set`` value silently (the
    overlay merged under it): one line naming the key, the file's value and the entry. Keys of
    one mapping given apart merge (the last run)."""
    started = _base(tmp_path, monkeypatch)
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump({"mask": {"finetune": {"defaults": {"learning_rate": 1.0e-4}}}}))
    assert cli.main(["exp", "run", "lr", "--file", str(over), "--set", entry, "-n"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ablate exp: --file {over} sets {key} ({value}) and --set {entry} sets it again: "
        "give each key in one of them\n"
    ), err
    assert started == [] and not (tmp_path / E.OVERLAYS).exists()
    apart = "mask.finetune.defaults.max_steps=5"  # a key beside the file's: merged
    assert cli.main(["exp", "run", "lr", "--file", str(over), "--set", apart, "-n"]) == 0
    assert len(started) == 1


def test_a_second_file_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """``--file A.yaml --file B.yaml``: the second replaced the first silently (argparse's
    ``store``); an experiment takes one overlay, so a second ``--file`` is refused naming both."""
    started = _base(tmp_path, monkeypatch)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"mask": {"finetune": {"defaults": {"learning_rate": 1.0e-4}}}}))
    b.write_text(yaml.safe_dump({"mask": {"finetune": {"defaults": {"max_steps": 5}}}}))
    assert cli.main(["exp", "run", "lr", "--file", str(a), "--file", str(b), "-n"]) == 2
    assert capsys.readouterr().err == (
        f"ablate exp: --file {a} and --file {b}: an experiment takes one overlay file: put "
        "their keys in one file (or give some as --set KEY=VALUE)\n"
    )
    assert started == [] and not (tmp_path / E.OVERLAYS).exists()


def test_a_run_of_experiments_alone_ends_with_their_summary():
    """The targets `ablate exp run` gives (exp_<name>_all), or a file in an experiment's tree,
    make the run's closing summary the experiments'; a target of the base's keeps the base's.
    A name whose rules' prefix starts another's (a, a_b) is told apart."""

    def plan(name):
        cfg = {"results": E.folder("results", name)}
        return E.Plan(name, cfg, "", E.rule_prefix(name), {}, [], [], [])

    plans = [plan("a"), plan("a_b")]
    assert exp_run.experiments_run(["exp_a_b_all"], [], plans) == ["a_b"]
    assert exp_run.experiments_run(["exp_a_all", "exp_a_b_all"], [], plans) == ["a", "a_b"]
    assert exp_run.experiments_run([], ["results/exp/a/recovery.csv"], plans) == ["a"]
    assert exp_run.experiments_run(["all"], [], plans) == []  # the default target: the base's
    assert exp_run.experiments_run(["exp_a_all"], ["results/recovery.csv"], plans) == []
    assert exp_run.experiments_run([], [], plans) == []
