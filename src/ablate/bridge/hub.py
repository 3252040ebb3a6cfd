"""The hub datasets the bridge study can load, checked when the config is parsed: a misspelled
dataset id must fail the dry run, not the data job on the submit host or a rented GPU.

No network at parse time: an offline list, checked against the hub's dataset cards on
:data:`_CHECKED`; add another dataset after checking its card. A local directory is not checked.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from ablate.bridge.world import DATASET_KIND
from ablate.core.config import ConfigError

#: When :data:`DATASETS` was checked against the hub's dataset cards.
_CHECKED = "2026-11-23"
#: Hub dataset id -> {config name: its splits}. HotpotQA's distractor config has no test split
#: (the seed evaluated on validation); fullwiki's test split has no answers.
DATASETS: dict[str, dict[str, tuple[str, ...]]] = {
    "openai/gsm8k": {"main": ("train", "test"), "socratic": ("train", "test")},
    "hotpotqa/hotpot_qa": {
        "distractor": ("train", "validation"),
        "fullwiki": ("train", "validation", "test"),
    },
}
#: Legacy ids the hub redirects to the id now published.
ALIASES = {"gsm8k": "openai/gsm8k", "hotpot_qa": "hotpotqa/hotpot_qa"}


def check_dataset(where: str, spec: dict[str, Any]) -> None:
    """Raise ConfigError naming ``where`` unless the spec is a known hub dataset's."""
    path = spec["path"]
    if Path(path).expanduser().is_dir():
        return
    configs = DATASETS.get(ALIASES.get(path, path))
    if configs is None:
        close = difflib.get_close_matches(path, [*DATASETS, *ALIASES], n=1, cutoff=0.5)
        hint = f" (did you mean {ALIASES.get(close[0], close[0])!r}?)" if close else ""
        raise ConfigError(
            f"invalid config at {where}.path: {path!r} is not a known hub dataset id{hint}; "
            f"known (ablate.bridge.hub, checked {_CHECKED}): {', '.join(sorted(DATASETS))}"
        )
    name = spec.get("name")
    if name not in configs:
        raise ConfigError(
            f"invalid config at {where}.name: {path!r} has no config {name!r} "
            f"(it has: {', '.join(configs)})"
        )
    for key in ("train_split", "test_split"):  # the schema fills their defaults
        if key in spec and spec[key] not in configs[name]:
            raise ConfigError(
                f"invalid config at {where}.{key}: {path!r} ({name}) has no split {spec[key]!r} "
                f"(it has: {', '.join(configs[name])})"
            )


def check_data(data: dict[str, Any]) -> None:
    """Every hub dataset of ``bridge.data`` (nothing for the embedded world)."""
    if data["source"] != "hub":
        return
    for dataset in DATASET_KIND:
        if data.get(dataset) is not None:
            check_dataset(f"bridge.data.{dataset}", data[dataset])
