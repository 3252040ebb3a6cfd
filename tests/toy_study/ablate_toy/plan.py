"""The toy study's side of the planner: its one job, of no model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.core.planner.planned_jobs import PlannedJob, StudyPlan
from ablate_toy import layout


def study_plan(config: dict[str, Any], ref: Any, root: Path) -> StudyPlan:
    flips = float(config["toy"]["flips"])
    jobs = [
        PlannedJob(
            job=j,
            model="coin",
            policy=None,
            tokens=flips,
            tokens_source="one token per flip",
            params=1.0,
            params_source="a coin",
        )
        for j in layout.jobs(config)
    ]
    return StudyPlan(
        study="toy",
        model="coin",
        params=1.0,
        params_source="a coin",
        jobs=jobs,
        params_of_run=lambda job, data: 1.0,
        tokens_of_run=lambda job, data: None,
    )
