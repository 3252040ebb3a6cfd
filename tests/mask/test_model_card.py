"""The base model card, and the real-study model rule (a local "pretrained" model, offline)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ablate.core.outputs import model_card

ROOT = Path(__file__).resolve().parents[2]


def test_write_and_read(tmp_path, tiny_model_dir):
    card = model_card.write(
        tmp_path / "base.json",
        source="embedded",
        model=tiny_model_dir,
        config_slice={"a": 1},
        extra={"pretrain_run_id": "x"},
    )
    back = model_card.read(tmp_path / "base.json")
    assert back == json.loads(json.dumps(card, default=str))
    assert back["path"] == str(tiny_model_dir) and back["id"] is None and back["local"]
    assert back["provenance"]["inputs"]["model"]  # a small local model is fingerprinted
    assert back["pretrain_run_id"] == "x"


def test_read_errors(tmp_path):
    with pytest.raises(model_card.ModelCardError, match="does not exist"):
        model_card.read(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps({"path": "x"}))
    with pytest.raises(model_card.ModelCardError, match="lacks the key 'revision'"):
        model_card.read(tmp_path / "bad.json")


def test_locate_on_another_machine(tmp_path, tiny_model_dir, capsys):
    """A job loads what the card names where the card was written; elsewhere (a Vast instance
    without that disk) a downloaded snapshot becomes the hub id at the pinned revision, and a
    missing local model is an error that says why, never a silent other model."""
    local = model_card.write(tmp_path / "a.json", source="embedded", model=tiny_model_dir)
    assert model_card.locate(local) == (str(tiny_model_dir), None)
    hub = dict(source="pretrained", path="org/model", id="org/model", revision="abc123")
    assert model_card.locate(hub) == ("org/model", "abc123")
    snapshot = {**hub, "path": str(tmp_path / "other-host-cache" / "snapshots" / "abc123")}
    assert model_card.locate(snapshot) == ("org/model", "abc123")
    assert "not on this machine" in capsys.readouterr().out
    snapshot["path"] = str(tiny_model_dir)  # the snapshot is here: its files, no revision
    assert model_card.locate(snapshot) == (str(tiny_model_dir), None)
    gone = {**local, "path": str(tmp_path / "gone")}
    with pytest.raises(model_card.ModelCardError, match="declared input"):
        model_card.locate(gone)


def test_register_hub_id_offline_keeps_the_configured_revision(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # a cached snapshot of org/model at v1 (an uncached id offline is refused: test_reliability.py)
    repo = tmp_path / "hub" / "models--org--model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "v1").write_text("a" * 40)
    (repo / "snapshots" / ("a" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("a" * 40) / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    card = model_card.register_pretrained(tmp_path / "c.json", model="org/model", revision="v1")
    assert (card["path"], card["id"], card["revision"]) == ("org/model", "org/model", "v1")
    assert card["resolved"].startswith("offline")


def test_register_a_pinned_commit_records_it_and_the_name(tmp_path, monkeypatch):
    """A branch pinned to its commit (ablate.core.outputs.hub_revisions): the card loads the commit
    the run ids name and keeps the revision as the config wrote it."""
    from huggingface_hub import constants

    sha = "b" * 40
    snapshot = tmp_path / "hub" / "models--org--model" / "snapshots" / sha
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    card = model_card.register_pretrained(
        tmp_path / "c.json", model="org/model", revision=sha, requested={"revision": "main"}
    )
    assert (card["revision"], card["requested_revision"]) == (sha, "main")


def test_register_rejects_a_directory_without_config(tmp_path):
    with pytest.raises(model_card.ModelCardError, match="has no config.json"):
        model_card.register_pretrained(tmp_path / "c.json", model=str(tmp_path))


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
