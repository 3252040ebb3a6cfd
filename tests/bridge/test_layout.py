"""The bridge study's layout (ablate.bridge.layout): its jobs' files are its patterns (fast)."""

from __future__ import annotations

from ablate.bridge import layout


def test_jobs_share_the_file_patterns(bridge):
    """Every job's outputs and record are PATTERNS formatted; a record is one of its outputs."""
    for job in layout.jobs({"bridge": bridge, "results": "results"}):
        assert job.study == "bridge" and job.log.startswith("results/logs/bridge/"), job.name
        assert job.record is None or job.record in job.outputs.values(), job.rule
        assert all(o.startswith("results/bridge/") for o in job.outputs.values())
