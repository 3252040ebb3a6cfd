"""A results folder under another name (ablate.core.trees.results_origin): moved or
renamed, reached through another `results:` value, or made by another working directory's runs,
it had none of Snakemake's records of its jobs: an edit of parameters reran nothing, silently,
and a job that did rerun failed reading a model card that named the old path (an error about a
remote executor), after Snakemake had removed its finished result; every rerun failed the same
way. `results: .` printed a warning per output path. Each is refused, or normalized, at parse
time, a dry run too."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from checkout import copy_checkout, snakemake
from helpers import DEEP_JSON

from ablate.core.config import normalized, validate_config
from ablate.core.trees import results_origin

#: the mask study's first job alone: seconds, no torch model
MASK = ("--config", "studies=[mask]")


@pytest.mark.parametrize("value", [".", "..", "../..", "results/.."])
def test_the_workflow_folder_or_one_above_it_is_refused(value):
    message = results_origin.name_error(normalized(value))
    assert message.startswith("invalid config at results: ") and message.endswith(
        "name a folder of its own (results: results)"
    )


@pytest.mark.parametrize("value", ["results", "results/ministral3b", "../shared/results"])
def test_a_folder_of_its_own_is_taken(value):
    assert results_origin.name_error(value) is None


def test_the_config_has_one_spelling_of_the_results_folder():
    """`./results` is `results`: Snakemake keys its records by the path as written (and warned
    of each output path starting with ./)."""
    from helpers import edit

    cfg = edit("results", "./results/x/..")
    validate_config(cfg)
    assert cfg["results"] == "results"


def metadata_record(workdir, output: str) -> None:
    """A Snakemake record (``.snakemake/metadata``) of a job that wrote ``output``."""
    key = base64.urlsafe_b64encode(output.encode()).decode()
    (workdir / ".snakemake" / "metadata").mkdir(parents=True, exist_ok=True)
    (workdir / ".snakemake" / "metadata" / key).write_text("{}")


def test_an_origin_nested_too_deep_reads_as_none(tmp_path):
    """``.origin.json`` 100k deep was a RecursionError at parse time: it reads as none."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / results_origin.ORIGIN_NAME).write_text(DEEP_JSON)
    assert results_origin.read(tmp_path / "results") is None


def test_origin_error(tmp_path, monkeypatch):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    monkeypatch.chdir(here)
    assert results_origin.origin_error("results", here) is None  # a new folder
    results_origin.record("results", there)
    assert json.loads((here / "results" / ".origin.json").read_text()) == {
        "results": "results",
        "workdir": str(there),
    }
    # renamed
    (here / "results").rename(here / "renamed")
    message = results_origin.origin_error("renamed", here)
    assert message.startswith(f"renamed/ was made as results/ (in {there}; ")
    assert message.endswith(
        "use it under its name (`results: results`, moving it back if it was moved), or give "
        "this configuration a new results folder"
    )
    (here / "renamed").rename(here / "results")
    # the same name, another working directory's runs
    message = results_origin.origin_error("results", here)
    assert message.startswith(f"results/ was made by runs in {there}, whose Snakemake records")
    # a copy of that working directory: its records came along
    metadata_record(here, "results/data/corpus.jsonl")
    assert results_origin.origin_error("results", here) is None
    results_origin.record("results", here)
    assert results_origin.read("results")["workdir"] == str(here)


def test_a_renamed_folder_fails_the_dry_run_in_one_line(tmp_path):
    """A folder a run of this checkout made as `results` (its origin as that run wrote it),
    renamed: the dry run stops at parse time."""
    wd = copy_checkout(tmp_path / "wd")
    (wd / "made").mkdir()
    origin = {"results": "made", "workdir": str(wd)}
    (wd / "made" / results_origin.ORIGIN_NAME).write_text(json.dumps(origin))
    (wd / "made").rename(wd / "renamed")
    r = snakemake(wd, "-n", *MASK, "results=renamed", timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"renamed/ was made as made/ (in {wd}; renamed/.origin.json): Snakemake's " in out, out


@pytest.mark.slow
def test_a_folder_under_another_name_is_refused_before_any_job(tmp_path):
    """A real run, then the folder renamed; the same folder from another checkout; a copy of the
    whole checkout (its records with it) runs on; `./results` is `results`."""
    wd = copy_checkout(tmp_path / "wd")
    r = snakemake(wd, "-c1", *MASK, "--", "results/data/corpus.jsonl", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert results_origin.read(wd / "results") == {"results": "results", "workdir": str(wd)}

    (wd / "results").rename(wd / "renamed")
    before = sorted((p, p.stat().st_mtime_ns) for p in (wd / "renamed").rglob("*"))
    for args in (("-n",), ("-c1",)):
        r = snakemake(wd, *args, *MASK, "results=renamed", timeout=600)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert f"renamed/ was made as results/ (in {wd}; renamed/.origin.json): " in out, out
        assert "Building DAG" not in out, out
    assert sorted((p, p.stat().st_mtime_ns) for p in (wd / "renamed").rglob("*")) == before
    (wd / "renamed").rename(wd / "results")

    other = copy_checkout(tmp_path / "other")
    r = snakemake(other, "-n", *MASK, "results=../wd/results", timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"../wd/results/ was made as results/ (in {wd}; " in out, out
    (other / "results").symlink_to(wd / "results")  # the same name, another checkout's runs
    r = snakemake(other, "-n", *MASK, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"results/ was made by runs in {wd}, whose Snakemake records of its jobs " in out, out

    copy = tmp_path / "copy"
    shutil.copytree(wd, copy, symlinks=True)
    r = snakemake(copy, "-n", *MASK, "results=./results", timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "starts with './'" not in out, out


def test_results_dot_fails_the_dry_run_in_one_line(tmp_path):
    """`results: .` printed Snakemake's warning for each of its 964 output paths."""
    wd = copy_checkout(tmp_path / "wd")
    r = snakemake(wd, "-n", "--config", "results=.", timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert (
        "invalid config at results: '.' is the workflow's own folder (or one above it): outputs, "
        "logs and records would lie among its files; name a folder of its own (results: results)"
    ) in out, out
    assert "starts with './'" not in out, out
