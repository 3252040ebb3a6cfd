"""The base model card (:mod:`ablate.core.outputs.model_card`): written and read back, located on
another machine, a pretrained model registered at its pinned revision, and its refusals."""

from __future__ import annotations

import json

import pytest
from helpers import DEEP_JSON

from ablate.core.outputs import model_card


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


def test_check_revision_refuses_a_card_of_another_commit():
    """The run id names a commit the card does not record: one line naming both and the fix."""
    sha, other = "c" * 40, "d" * 40
    card = {"id": "org/model", "revision": sha.upper()}  # a sha compares without case
    model_card.check_revision(card, sha, "hub_revisions.lock")
    model_card.check_revision(card, "main", "hub_revisions.lock")  # a branch: nothing to compare
    model_card.check_revision({"id": None, "revision": None}, other, "x")  # a local model
    with pytest.raises(model_card.ModelCardError) as refused:
        model_card.check_revision(card, other, "hub_revisions.lock")
    msg = str(refused.value)
    assert f"records revision {sha.upper()} but the run id names commit {other}" in msg
    assert "(pinned in hub_revisions.lock): rerun the registration" in msg and "\n" not in msg


@pytest.mark.parametrize("model", ["./gone", "/abs/gone", "~/gone", "org/name/extra"])
def test_a_missing_path_is_not_taken_for_a_hub_id(model):
    with pytest.raises(model_card.ModelCardError, match="is not a hub id org/name"):
        model_card.register_pretrained("never-written.json", model=model)


def test_a_card_nested_too_deep_is_refused_in_one_line(tmp_path):
    """JSON 100k deep was a RecursionError out of the card's read: a card that does not parse."""
    (tmp_path / "deep.json").write_text(DEEP_JSON)
    with pytest.raises(
        model_card.ModelCardError, match="is not valid JSON: .* deeper than 100 levels"
    ) as got:
        model_card.read(tmp_path / "deep.json")
    assert "\n" not in str(got.value)
