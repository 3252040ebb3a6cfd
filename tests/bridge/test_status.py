"""The bridge study's side of STATUS.md and of ``ablate runs`` (ablate.bridge.status): a training job
to run, done, stale; a model job's changed keys and headline; each entry's numbers and scores from
the summary table (fast)."""

from __future__ import annotations

import copy
import json

from helpers import ROOT

from ablate import studies
from ablate.bridge import layout
from ablate.bridge import status as bridge_status
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


def test_a_model_job_is_stale_by_its_model_keys_and_headed_by_its_eval_loss():
    """A pretrained model's job compares the model section its record holds (its identity
    follows from it); its headline is its final eval loss, when it has one."""
    config = load_config(ROOT / "config/config.yaml")
    job = next(j for j in layout.jobs(config) if j.name == "model/source")
    old = copy.deepcopy(job.config)
    old["identity"] = {"recorded": "another way"}  # not what the model job compares
    assert bridge_status.changes(job, old, config) == []
    old["model"]["pretrain"]["max_steps"] = 1
    assert bridge_status.changes(job, old, config) == [
        "bridge.source.pretrain.max_steps 1 -> <absent>"
    ]
    record = {"final_eval_loss": 2.34567, "steps_done": 3}
    assert bridge_status.headline(job, record) == "eval loss 2.346, 3 steps"
    assert bridge_status.headline(job, {"steps_done": 3}) == ""


def test_each_entrys_numbers_and_scores_come_from_the_summary(tmp_path):
    summary = tmp_path / layout.PATTERNS["summary"]
    summary.parent.mkdir(parents=True)
    summary.write_text("entry,K,peak,final\n1a,8,0.5,0.25\n1b,8,0.4,nan\n")
    assert bridge_status.run_numbers(tmp_path) == [
        "1a peak 0.500 final 0.250",
        "1b peak 0.400 final nan",
    ]
    assert bridge_status.run_scores(tmp_path) == {"1a peak": 0.5, "1a final": 0.25, "1b peak": 0.4}
    assert bridge_status.claims(tmp_path) == []  # no claims table yet
    (tmp_path / layout.PATTERNS["claims"]).write_text("claim,verdict\nkv,supported\n")
    assert bridge_status.claims(tmp_path) == [{"claim": "kv", "verdict": "supported"}]
