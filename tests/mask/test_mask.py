"""The mask study package's own behaviour (ablate.mask): whether a config's mask jobs need the
hub (its model and its data both embedded: none does). Through the studies' registry:
tests/test_studies.py."""

from __future__ import annotations

import pytest

from ablate import mask


def config(model: str, data: str) -> dict:
    return {"mask": {"model": {"source": model}, "data": {"source": data}}}


@pytest.mark.parametrize(
    ("model", "data", "free"),
    [
        ("embedded", "embedded", True),
        ("embedded", "hub", False),
        ("pretrained", "embedded", False),
        ("pretrained", "hub", False),
    ],
)
def test_hub_free_only_with_model_and_data_embedded(model, data, free):
    assert mask.hub_free(config(model, data)) is free
