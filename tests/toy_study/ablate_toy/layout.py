"""The toy study's layout: its files and its one job (kind ``eval``: the planner forecasts it)."""

from __future__ import annotations

from typing import Any

from ablate.core.config import sorted_tree
from ablate.core.jobs import Job, benchmark_pattern, log_pattern, make_job

#: its job's log and benchmark: in its rule's folder, one file
LOG_FILES = {"folder": "toy_flip", "stem": "flips"}
PATTERNS = {
    "flips": "toy/flips.json",
    "claims": "claims/toy.csv",
    "log": log_pattern(**LOG_FILES),
    "benchmark": benchmark_pattern(**LOG_FILES),
}


def path(config: dict[str, Any], key: str) -> str:
    return f"{config['results']}/{PATTERNS[key]}"


def jobs(config: dict[str, Any]) -> list[Job]:
    return [
        make_job(
            config["results"],
            "toy",
            "toy_flip",
            "flip",
            {"flips": PATTERNS["flips"], "claims": PATTERNS["claims"]},
            **LOG_FILES,
            record="flips",
            kind="eval",
            wildcards={},
            stage=1,
            config=sorted_tree(config["toy"]),
            labels={"where": "toy"},
        )
    ]


def targets(config: dict[str, Any]) -> list[str]:
    return [path(config, "claims")]


def plan_config(config: dict[str, Any]) -> dict[str, Any]:
    return config["toy"]
