"""The outputs tests' shared checkpoint: a final checkpoint of a few small files, with its manifest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ablate.core.outputs import checkpoint_integrity


@pytest.fixture
def hashed_checkpoint(tmp_path) -> Path:
    """``tmp_path/ft/final`` as :func:`checkpoint_integrity.write_final` writes it: three random
    shards (hashed in parallel) and a config.json."""

    def save(tmp: Path) -> str:
        for i in range(3):
            (tmp / f"shard-{i}.bin").write_bytes(os.urandom(1 << 16))
        (tmp / "config.json").write_text("{}")
        return checkpoint_integrity.FORMAT_SAVE_PRETRAINED

    return Path(checkpoint_integrity.write_final(tmp_path / "ft", save)["path"])
