"""The record layer (ablate.core.outputs.records): one reading of a record, its provenance,
benchmark seconds and staleness, shared by STATUS, the planner, the staleness summary and the
tables."""

from __future__ import annotations

import json

from ablate.core.jobs import Job
from ablate.core.outputs import records
from ablate.core.planner import history
from ablate.core.planner.inputs import Reference
from ablate.core.reports import status

TWO_ROWS = "s\th:m:s\tmax_rss\n10.0\t0:00:10\t100\n30.0\t0:00:30\t120\n"


def test_benchmark_seconds_is_one_run_the_mean_of_its_rows(tmp_path):
    """A job benchmarked twice (Snakemake's repeat(): one row per run) took 20 s per run: the
    mean, never the 40 s sum; absent, empty or malformed files give None."""
    tsv = tmp_path / "job.tsv"
    tsv.write_text(TWO_ROWS)
    assert records.benchmark_seconds(tsv) == 20.0
    jsonl = tmp_path / "job.jsonl"
    jsonl.write_text('{"s": 10.0}\n{"s": 30.0}\n')
    assert records.benchmark_seconds(jsonl) == 20.0
    (tmp_path / "empty.tsv").write_text("s\th:m:s\n")
    (tmp_path / "bad.tsv").write_text("s\nnot-a-number\n")
    for p in (tmp_path / "absent.tsv", tmp_path / "empty.tsv", tmp_path / "bad.tsv", None):
        assert records.benchmark_seconds(p) is None


def test_status_and_planner_read_the_same_seconds(tmp_path):
    """STATUS's wall time and the planner's actual of one job benchmarked twice are one number."""
    (tmp_path / "job.tsv").write_text(TWO_ROWS)
    prov = {"run_id": "r1", "config_hash": "h", "config": {}, "hardware": {"gpus": []}}
    (tmp_path / "rec.json").write_text(json.dumps({"provenance": prov}))
    job = Job("mask", "finetune", "finetune/3A", {}, {"summary": "rec.json"}, None,
              record="rec.json", benchmark="job.tsv")  # fmt: skip
    (row,) = status.job_rows([job], tmp_path)
    planned = type("P", (), {"record": "rec.json", "benchmark": "job.tsv"})()
    run = history.finished_run(planned, tmp_path, Reference.__new__(Reference))
    assert row.wall_s == run.bench_s == 20.0


def test_provenance_nested_or_sidecar(tmp_path):
    """A record's block is nested under provenance, or the record is one (a sidecar)."""
    block = {"run_id": "r", "config_hash": "abc", "config": {"lr": 1}}
    assert records.provenance_of({"provenance": block, "macro": {}}) == block
    assert records.provenance_of(block) == block
    assert records.provenance_of({"macro": {}}) == {} == records.provenance_of(None)
    (tmp_path / "a.json").write_text(json.dumps({"provenance": block}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    assert records.recorded_config(tmp_path / "a.json") == {"lr": 1}
    assert records.read_json(tmp_path / "list.json") is None
    assert records.read_json(tmp_path / "broken.json") is None
    assert records.recorded_config(tmp_path / "absent.json") is None


def test_config_changes_names_the_key():
    assert records.config_changes({"lr": 1, "k": 2}, {"lr": 3, "k": 2}, "finetune") == [
        "finetune.lr 1 -> 3"
    ]
    assert records.config_changes({"lr": 1}, {"lr": 1}) == []
    assert records.config_changes(None, {"lr": 1}) == []  # nothing recorded: no reason to give
