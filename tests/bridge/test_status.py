"""The bridge study's side of STATUS.md (ablate.bridge.status): a training job to run, done, stale."""

from __future__ import annotations

import json

from helpers import ROOT

from ablate import studies
from ablate.core.outputs.provenance import config_hash
from ablate.core.planner.inputs import load_config
from ablate.core.reports import status


def test_status_reads_a_bridge_job(tmp_path):
    """A bridge training Job: done with its benchmark seconds; stale when the slice its record
    holds differs (the grid key named); to run without outputs."""
    config = load_config(ROOT / "config/config.yaml")
    side = studies.side("bridge", "status")
    (job,) = [j for j in studies.side("bridge", "layout").jobs(config) if j.name == "train/1b"]
    rows = status.job_rows([job], tmp_path, side, config)
    assert rows[0].status == "to run"
    for p in job.outputs.values():
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("{}")
    recorded = job.config["identity"]  # the slice of its config the run records
    prov = {"run_id": "r1", "config": recorded, "config_hash": config_hash(recorded)}
    record = {"provenance": prov, "peak": 0.5, "peak_step": 3, "final": 0.4, "steps_done": 9}
    (tmp_path / job.record).write_text(json.dumps(record))
    (tmp_path / job.benchmark).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / job.benchmark).write_text("s\n12.0\n")
    (row,) = status.job_rows([job], tmp_path, side, config)
    assert (row.status, row.wall_s, row.run_id) == ("done", 12.0, "r1")
    assert row.headline.startswith("peak 0.500 @ 3")
    old = json.loads(json.dumps(recorded))
    old["params"]["lr"] = old["params"]["lr"] * 2
    record["provenance"]["config"] = old
    (tmp_path / job.record).write_text(json.dumps(record))
    (row,) = status.job_rows([job], tmp_path, side, config)
    assert row.status == "stale" and row.why.startswith("bridge.grid.1b.params.lr "), row.why
