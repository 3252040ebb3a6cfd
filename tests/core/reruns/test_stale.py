"""Which finished jobs a config edit makes stale (:func:`ablate.core.reruns.stale.stale_lines`), with
a stand-in study part: one ``stale: <rule> <wildcards>: <changes>`` line per finished job whose
study says its recorded slice changed; a job not run yet, or unchanged, says nothing. The mask
study's own changes, key by key: tests/mask/test_mask_stale.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ablate.core.jobs import Job
from ablate.core.outputs.io import write_json
from ablate.core.reruns import stale


@pytest.fixture
def asked(monkeypatch) -> list:
    """The study part's ``changes`` calls, (job name, recorded slice, config); it reports the
    recorded slice's keys whose value differs from ``config["now"]``."""
    calls = []

    def changes(job, old, config):
        calls.append((job.name, old, config))
        return [
            f"{k} {v} -> {config['now'][k]}"
            for k, v in (old or {}).items()
            if config["now"][k] != v
        ]

    def side(study, part):
        assert (study, part) == ("toy", "status")
        return SimpleNamespace(changes=changes)

    monkeypatch.setattr(stale.studies, "side", side)
    return calls


def _job(tmp_path, name, rule, wildcards, recorded=None) -> Job:
    record = None
    if recorded is not None:
        record = str(
            write_json(tmp_path / name / "record.json", {"provenance": {"config": recorded}})
        )
    return Job(
        study="toy", rule=rule, name=name, wildcards=wildcards, outputs={}, log=None, record=record
    )


def test_a_finished_job_whose_slice_changed_is_named_by_its_rule_and_wildcards(tmp_path, asked):
    jobs = [
        _job(
            tmp_path,
            "finetune/3A",
            "finetune",
            {"variant": "3A", "seed": "1"},
            {"lr": 1, "steps": 5},
        ),
        _job(tmp_path, "pretrain", "pretrain", {}, {"lr": 2}),
    ]
    config = {"now": {"lr": 3, "steps": 6}}
    assert stale.stale_lines(jobs, config) == [
        "stale: finetune 3A/1: lr 1 -> 3, steps 5 -> 6",
        "stale: pretrain: lr 2 -> 3",
    ]
    assert asked[0] == ("finetune/3A", {"lr": 1, "steps": 5}, config)  # the recorded slice


def test_a_job_not_run_or_unchanged_says_nothing(tmp_path, asked):
    not_run = _job(tmp_path, "eval/3A", "eval_model", {"variant": "3A"})
    same = _job(tmp_path, "finetune/3B", "finetune", {"variant": "3B"}, {"lr": 3})
    assert stale.stale_lines([not_run, same], {"now": {"lr": 3}}) == []
    assert [name for name, _, _ in asked] == ["finetune/3B"]  # a job without a record is not asked
