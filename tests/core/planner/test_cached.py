"""Which planned jobs the run cache holds (ablate.core.planner.cached): held ones cost nothing,
every other one gets a note saying why it is forecast at full cost. The whole plan with a real
cache entry: tests/core/reruns/test_runcache.py::test_the_plan_counts_a_job_whose_key_the_cache_holds_as_zero."""

from __future__ import annotations

from ablate.core.jobs import Job
from ablate.core.planner.cached import NOT_CHECKED, in_cache
from ablate.core.planner.planned_jobs import PlannedJob
from ablate.core.reruns import runcache


def planned(name: str) -> PlannedJob:
    job = Job(study="mask", rule=name.split("/")[0], name=name, wildcards={}, outputs={}, log=None)
    return PlannedJob(job, "base", None, 1.0, "", 1.0, "")


def spec(*inputs: str) -> dict:
    return {
        "rule": "finetune",
        "wildcards": {"variant": "3A"},
        "params": {},
        "inputs": list(inputs),
    }


def test_no_run_cache_means_no_check():
    jobs = [planned("finetune/3A")]
    assert in_cache({"run_cache": None}, jobs, {"finetune/3A": spec()}, ".", None) is None
    assert jobs[0].notes == []


def test_a_held_job_is_in_the_cache_and_every_other_says_why_not(tmp_path):
    (tmp_path / "data.txt").write_text("a b c\n")
    scripts, cache = tmp_path / "scripts", tmp_path / "cache"
    scripts.mkdir()
    held = spec("data.txt")
    parts = runcache.key_parts(**dict(held, inputs=[str(tmp_path / "data.txt")]), scripts=scripts)
    (cache / runcache.key_of(parts)).mkdir(parents=True)
    (cache / runcache.key_of(parts) / runcache.MANIFEST).write_text("{}")
    jobs = [planned(n) for n in ("finetune/3A", "finetune/3B", "eval/3A", "eval/3B", "leakage/x")]
    specs = {
        "finetune/3A": held,
        "finetune/3B": dict(held, wildcards={"variant": "3B"}),  # another key: no entry
        "eval/3A": spec("finetune/3A/final"),  # its input is not there yet
        "eval/3B": {"error": "WorkflowError: no such rule"},
    }  # leakage/x: no rule of this workflow runs it
    holds = in_cache({"run_cache": str(cache)}, jobs, specs, tmp_path, scripts)
    assert [holds(j) for j in jobs] == [True, False, False, False, False]
    notes = {j.id: j.notes for j in jobs}
    assert notes["finetune/3A"] == []
    (miss,) = notes["finetune/3B"]
    assert miss.startswith("run cache: no entry for its key ")
    (waits,) = notes["eval/3A"]
    assert waits.startswith(NOT_CHECKED) and "finetune/3A/final do not exist yet" in waits
    assert notes["eval/3B"] == [
        NOT_CHECKED + "its rule could not be expanded (WorkflowError: no such rule)"
    ]
    assert notes["leakage/x"] == [NOT_CHECKED + "no rule of this workflow runs it"]


def test_the_code_hash_is_taken_once_a_plan(tmp_path, monkeypatch):
    """Every job's key holds the same code hash: one walk of the package a plan (14 took 0.66 s
    of plan_estimate's 4 s under a profiler), the same key as each job's own."""
    (tmp_path / "data.txt").write_text("a b c\n")
    walks = []
    real = runcache.code_files
    monkeypatch.setattr(runcache, "code_files", lambda *a: walks.append(a) or real(*a))
    names = ("finetune/3A", "finetune/3B", "finetune/5B")
    jobs = [planned(n) for n in names]
    specs = {n: dict(spec("data.txt"), wildcards={"variant": n[-2:]}) for n in names}
    in_cache({"run_cache": str(tmp_path / "cache")}, jobs, specs, tmp_path, tmp_path)
    assert len(walks) == 1
    inputs = [str(tmp_path / "data.txt")]
    own = runcache.key_parts(**dict(specs["finetune/3A"], inputs=inputs), scripts=tmp_path)
    assert jobs[0].notes == [
        f"run cache: no entry for its key {runcache.key_of(own)[:12]} " + "(inputs as they are now)"
    ]


def test_outside_snakemake_no_job_is_checked(tmp_path):
    """``ablate plan`` has no rule specs: every job is forecast in full, with a note."""
    jobs = [planned("finetune/3A")]
    holds = in_cache({"run_cache": str(tmp_path)}, jobs, None, tmp_path, None)
    assert holds(jobs[0]) is False
    (note,) = jobs[0].notes
    assert note.startswith(NOT_CHECKED) and "known inside Snakemake only" in note


class StorageError(Exception):
    """A storage plugin's own error type (not an OSError)."""


def test_a_cache_that_cannot_be_read_is_a_note_not_an_error(tmp_path, monkeypatch):
    def broken(cache, parts):
        raise StorageError("no access")

    monkeypatch.setattr(runcache, "holds", broken)
    (tmp_path / "data.txt").write_text("x\n")
    jobs = [planned("finetune/3A")]
    holds = in_cache(
        {"run_cache": "s3://x"}, jobs, {"finetune/3A": spec("data.txt")}, tmp_path, None
    )
    assert holds(jobs[0]) is False
    assert jobs[0].notes == [NOT_CHECKED + "StorageError: no access"]
