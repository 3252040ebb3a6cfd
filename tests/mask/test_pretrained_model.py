"""The real-study model rule: a local "pretrained" model through the workflow, offline (the card
itself: tests/core/outputs/test_model_card.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ablate.core.outputs import model_card

ROOT = Path(__file__).resolve().parents[2]


def test_pretrained_source_through_the_workflow(tmp_path, tiny_model_dir):
    """model.source: pretrained with a local directory: prepare_model writes the card, offline."""
    for name in ("Snakefile", "rules", "workflow", "config", "profiles", "environment.yml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    cfg = yaml.safe_load((ROOT / "config" / "ministral3b.yaml").read_text())
    cfg["mask"]["model"] = {"source": "pretrained", "path": str(tiny_model_dir), "revision": None}
    cfg["mask"]["data"]["sft"] = "sft.jsonl"
    cfg["results"] = "results"
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-c1",
            "results/model/base.json",
            "--configfile",
            "local.yaml",
            # the real config's jobs ask for a GPU: run on this CPU on purpose (preflight)
            "--config",
            "allow_cpu=true",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    card = model_card.read(tmp_path / "results/model/base.json")
    assert card["source"] == "pretrained" and card["path"] == str(tiny_model_dir)
    assert card["resolved"] == "local directory"
    assert card["provenance"]["config"]["path"] == str(tiny_model_dir)
