"""The planner tests' setting: run from the repository root (the config's defaults are relative to
it), no Vast API key."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    # config defaults (config/gpu_measurements.yaml, config/offers_snapshot.json) are relative
    # to the repository root
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("VAST_API_KEY", raising=False)
