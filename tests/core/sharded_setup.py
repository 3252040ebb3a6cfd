"""The set-up the sharded-recipe tests share: a tiny finetune's arguments and the environment
its torchrun processes need."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from helpers import no_leak, synthetic_rows

from ablate.mask.training.entries import FinetuneSpec

ROOT = Path(__file__).resolve().parents[2]


def finetune_kwargs(model_dir, tmp_path: Path, params: dict) -> dict:
    """``finetune``'s arguments (out_dir aside) for the tiny model on synthetic rows."""
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows()))
    return dict(
        spec=FinetuneSpec.parse("prefix_bidir", params),
        model_path=str(model_dir),
        data=str(data),
        probe_result=no_leak("prefix_bidir"),
    )


@contextlib.contextmanager
def process_path():
    """Each torchrun process imports this checkout's package and the tests' launch hooks."""
    path = [str(ROOT / "src"), str(ROOT / "tests" / "core"), str(ROOT / "tests" / "mask")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")]))
        yield
