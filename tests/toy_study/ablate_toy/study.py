"""The toy study's layout: its files and its one job (kind ``eval``: the planner forecasts it)."""

from __future__ import annotations

from typing import Any

from ablate.core.config import sorted_tree
from ablate.core.jobs import Job

PATTERNS = {
    "flips": "toy/flips.json",
    "claims": "claims/toy.csv",
    "log": "logs/toy_flip/flips.log",
    "benchmark": "benchmarks/toy_flip/flips.tsv",
}


def path(config: dict[str, Any], key: str) -> str:
    return f"{config['results']}/{PATTERNS[key]}"


def jobs(config: dict[str, Any]) -> list[Job]:
    outputs = {"flips": path(config, "flips"), "claims": path(config, "claims")}
    return [
        Job(
            study="toy",
            rule="toy_flip",
            name="flip",
            wildcards={},
            outputs=outputs,
            log=path(config, "log"),
            stage=1,
            kind="eval",
            benchmark=path(config, "benchmark"),
            record=outputs["flips"],
            config=sorted_tree(config["toy"]),
            labels={"where": "toy"},
        )
    ]


def targets(config: dict[str, Any]) -> list[str]:
    return [path(config, "claims")]


def plan_config(config: dict[str, Any]) -> dict[str, Any]:
    return config["toy"]
