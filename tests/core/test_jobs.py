"""One job type and the study parts (ablate.core.jobs): every registered study satisfies the
protocol and returns core Jobs the rules, STATUS and the planner read (STATUS of a bridge job:
tests/bridge/test_status.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ablate import studies
from ablate.core.jobs import LOG, Job, StudyLayout, StudyPlanner, StudyStatus, benchmark_pattern
from ablate.core.planner.inputs import load_config

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = {"layout": StudyLayout, "status": StudyStatus, "plan": StudyPlanner}


def config_of(name: str = "config/config.yaml") -> dict:
    return load_config(ROOT / name)


@pytest.mark.parametrize("study", sorted(studies.STUDIES))
def test_every_study_follows_the_protocol(study):
    """Each part of a registered study has its part's names; its job list is core Jobs with
    unique names, paths under the results folder, upstream names of its own jobs, and targets
    that are outputs of its jobs."""
    for part, protocol in PROTOCOL.items():
        assert isinstance(studies.side(study, part), protocol), (study, part)
    config = config_of()
    layout = studies.side(study, "layout")
    jobs = layout.jobs(config)
    assert jobs and all(isinstance(j, Job) and j.study == study for j in jobs)
    names = [j.name for j in jobs]
    assert len(names) == len(set(names)), names
    results = config["results"] + "/"
    for j in jobs:
        assert all(p.startswith(results) for p in j.outputs.values()), j.name
        assert j.record is None or j.record in j.outputs.values(), j.name
        assert set(j.upstream) <= set(names) | {"make_data"}, (j.name, j.upstream)
        assert j.kind is None or j.benchmark, j.name  # a planned job's time is measured
    # one log and benchmark convention (make_job): logs/<folder>/<stem>.log, one per job, and a
    # planned job's benchmark, of the same folder and stem (the planner finds its time there)
    logs = re.escape(results + LOG).replace(r"\{folder\}", "(.+)").replace(r"\{stem\}", "([^/]+)")
    assert len({j.log for j in jobs}) == len(jobs)
    for j in jobs:
        folder, stem = re.fullmatch(logs, j.log).groups()
        assert j.benchmark == (results + benchmark_pattern(folder, stem) if j.kind else None)
    outputs = {p for j in jobs for p in j.outputs.values()}
    assert set(layout.targets(config)) <= outputs


def test_unknown_study_or_part_is_named():
    with pytest.raises(KeyError, match="unknown study 'other'"):
        studies.side("other", "layout")


def test_planned_jobs_are_the_jobs_with_a_kind(monkeypatch):
    """The planner reads the study's Jobs: one planned job per Job with a kind, its id, rule,
    record and benchmark those of the Job."""
    monkeypatch.chdir(ROOT)
    from ablate.core.planner.inputs import load_reference

    config = config_of("config/latentwire.yaml")
    jobs = {j.name: j for j in studies.side("bridge", "layout").jobs(config) if j.kind}
    ref = load_reference(config["plan"]["measurements"])
    planned = studies.side("bridge", "plan").study_plan(config, ref, ROOT / "none").jobs
    assert [p.id for p in planned] == list(jobs)
    for p in planned:
        assert p.job is jobs[p.id] or p.job == jobs[p.id]
        assert (p.rule, p.kind, p.record, p.benchmark) == (
            p.job.rule,
            p.job.kind,
            p.job.record,
            p.job.benchmark,
        )
