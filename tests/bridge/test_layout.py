"""The bridge study's layout (ablate.bridge.layout): its jobs' files are its patterns, a job is
named by the entries it serves and reads the jobs it needs, the data a hub study fetches and the
files a full run ends with (fast)."""

from __future__ import annotations

from helpers import bridge_config

from ablate.bridge import grid, layout


def test_jobs_share_the_file_patterns(bridge):
    """Every job's outputs and record are PATTERNS formatted; a record is one of its outputs."""
    for job in layout.jobs({"bridge": bridge, "results": "results"}):
        assert job.study == "bridge" and job.log.startswith("results/logs/bridge/"), job.name
        assert job.record is None or job.record in job.outputs.values(), job.rule
        assert all(o.startswith("results/bridge/") for o in job.outputs.values())


def test_a_job_is_named_by_what_it_serves_and_reads_what_it_needs(bridge):
    jobs = {j.name: j for j in layout.jobs({"bridge": bridge, "results": "results"})}
    assert "train/1a+2c" in jobs and not [n for n in jobs if n.startswith("train/2c")]  # same_as
    states = {(j.rule, j.labels["where"]): j for j in jobs.values() if j.rule.endswith("_states")}
    swap = states["bridge_source_states", "bridge.grid.swap"]
    assert swap.upstream == ["data", "model/target"]  # the swapped entry's source is the target
    assert list(swap.outputs) == ["train", "test", "summary"]
    teacher = states["bridge_teacher_states", "bridge.grid.1a"]
    assert teacher.upstream == ["data", "model/target"] and list(teacher.outputs) == [
        "train",
        "summary",
    ]  # the KL teacher's rows: the train split only
    assert jobs["train/1a+2c"].upstream == [
        "data",
        "model/source",
        "model/target",
        states["bridge_source_states", "bridge.grid.1a"].name,
        teacher.name,
    ]


def test_a_hub_study_fetches_only_its_datasets_and_ends_with_its_tables():
    bridge = bridge_config("latentwire.yaml")
    bridge["grid"] = {"1a": bridge["grid"]["1a"]}  # GSM8K only
    bridge["infer"] = {**bridge["infer"], "entry": "1a", "qa_entry": None}
    study = grid.resolve(bridge)
    assert layout.data_files(study) == [
        "bridge/data/gsm8k_train.jsonl",
        "bridge/data/gsm8k_test.jsonl",
    ]
    run_id = study.entries["1a"].run_id
    assert layout.targets({"bridge": bridge, "results": "res"}) == [
        "res/bridge/summary.csv",
        "res/bridge/claims.csv",
        "res/bridge/plots/accuracy_over_steps.png",
        "res/bridge/plots/accuracy_vs_k.png",
        "res/bridge/plots/baselines.png",
        f"res/bridge/infer/{run_id}/summary.csv",
    ]
