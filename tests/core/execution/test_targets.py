"""A command-line target this configuration makes nowhere (:mod:`ablate.core.execution.targets`),
without Snakemake: the targets read from the ``snakemake`` command line, the files a target may
name, each config file's results folder, and the one line naming the nearest file or the config
that makes it. Through a dry run: tests/core/test_config_schema.py."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from ablate.core.execution import targets


def test_unknown_target(tmp_path, monkeypatch):
    from ablate.core.execution.targets import config_folders, unknown_target

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/a.yaml").write_text("results: results\n")
    (tmp_path / "config/b.yaml").write_text("results: results/b\n")
    (tmp_path / "config/overlay.yaml").write_text("mask: {}\n")
    folders = config_folders("config")
    assert folders == {"results": "config/a.yaml", "results/b": "config/b.yaml"}
    known = ["results/recovery.csv", "results/plan.csv"]
    assert unknown_target("results/recovery.csv", known, "results", folders) is None
    assert unknown_target("./results/plan.csv", known, "results", folders) is None
    assert "did you mean results/plan.csv?" in unknown_target(
        "results/plam.csv", known, "results", folders
    )
    assert "--configfile config/b.yaml" in unknown_target(
        "results/b/recovery.csv", known, "results", folders
    )
    b_known = ["results/b/recovery.csv"]  # the other way round: b's run, the default's file
    assert "--configfile config/a.yaml" in unknown_target(
        "results/recovery.csv", b_known, "results/b", folders
    )
    assert "did you mean results/b/recovery.csv?" in unknown_target(
        "results/b/recovery.cs", b_known, "results/b", folders
    )
    assert "the outputs are under results/" in unknown_target(
        "results/zzz/qqq", known, "results", folders
    )


def test_command_line_targets(monkeypatch):
    from ablate.core.execution.targets import command_line_targets

    def targets(argv):
        monkeypatch.setattr(sys, "argv", argv)  # the command line this process runs
        return command_line_targets()

    cli = ["/venv/bin/snakemake", "-n", "results/a.csv", "-c2", "--configfile", "c.yaml"]
    assert targets(cli) == ["results/a.csv"]
    assert targets(["/lib/snakemake/__main__.py", "status", "-n"]) == ["status"]
    assert targets(["/venv/bin/pytest", "tests/core/x.py"]) == []  # the API


def test_the_snakemake_command_line_is_known_by_its_program():
    assert targets.is_snakemake_cli(["/venv/bin/snakemake", "-n"])
    assert targets.is_snakemake_cli(["/lib/python3.11/site-packages/snakemake/__main__.py"])
    assert not targets.is_snakemake_cli(["/venv/bin/pytest", "snakemake"])
    assert not targets.is_snakemake_cli([])


def test_a_target_may_name_a_jobs_outputs_log_benchmark_and_a_fixed_rules_products():
    jobs = [
        SimpleNamespace(
            outputs={"a": "r/x/out.json", "b": "r/x/final"}, log="r/logs/x.log", benchmark=None
        ),
        SimpleNamespace(outputs={}, log=None, benchmark="r/bench/y.tsv"),
    ]

    def rule(wild: bool, products: list[str]) -> SimpleNamespace:
        return SimpleNamespace(has_wildcards=lambda: wild, products=lambda: products)

    rules = [rule(False, ["r/plan.csv"]), rule(True, ["r/{variant}/never.csv"])]
    assert targets.target_files(jobs, rules) == [
        "r/x/out.json", "r/x/final", "r/logs/x.log", "r/bench/y.tsv", "r/plan.csv",
    ]  # fmt: skip


def test_config_folders_keep_the_first_file_of_a_folder_and_skip_what_does_not_parse(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/a.yaml").write_text("results: out/\n")
    (tmp_path / "config/b.yml").write_text("results: ./out\n")  # the same folder
    (tmp_path / "config/c.yaml").write_text("results: [unclosed\n")
    (tmp_path / "config/d.yaml").write_text("- a list\n")
    (tmp_path / "config/e.yaml").write_text("results: 3\n")
    (tmp_path / "config/f.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xff")  # was a UnicodeDecodeError
    assert targets.config_folders("config") == {"out": "config/a.yaml"}
