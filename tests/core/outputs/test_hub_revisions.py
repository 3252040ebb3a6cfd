"""A hub branch or tag resolved to its commit (ablate.core.outputs.hub_revisions): lock, cache, hub,
name.

No network: HF_HUB_OFFLINE is set (tests/conftest.py), the cache is a temporary folder and the
hub a fake ``HfApi``."""

from __future__ import annotations

import json

import pytest
from helpers import DEEP_JSON

from ablate.core.config import ConfigError
from ablate.core.outputs import hub_revisions

A, B = "a" * 40, "b" * 40


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; ``cache("org/m", "main", sha)`` writes a ref file there."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_revisions, "_warned", set())

    def ref(repo: str, rev: str, sha: str) -> None:
        folder = tmp_path / "hub" / ("models--" + repo.replace("/", "--")) / "refs"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / rev).write_text(sha)

    return ref


def test_the_cache_ref_file_names_the_commit_and_is_locked(cache, tmp_path):
    cache("org/m", "main", A)
    assert hub_revisions.resolve("org/m", None, tmp_path / "res") == A
    lock = json.loads((tmp_path / "res" / hub_revisions.LOCK).read_text())
    assert lock["org/m@main"]["sha"] == A and lock["org/m@main"]["how"] == "cache"


def test_the_lock_wins_over_the_cache(cache, tmp_path):
    """The branch moved (the cache names B now): the results folder keeps the commit it ran."""
    cache("org/m", "main", A)
    hub_revisions.resolve("org/m", "main", tmp_path)
    cache("org/m", "main", B)
    assert hub_revisions.resolve("org/m", "main", tmp_path) == A
    (tmp_path / hub_revisions.LOCK).unlink()  # deleting the entry moves to the new head
    assert hub_revisions.resolve("org/m", "main", tmp_path) == B


def test_offline_and_uncached_keeps_the_name_and_warns_once(cache, tmp_path, capsys):
    assert hub_revisions.resolve("org/m", "main", tmp_path) == "main"
    assert hub_revisions.resolve("org/m", "main", tmp_path) == "main"
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "run ids name the branch, not a commit" in err and "revision: <sha>" in err
    assert not (tmp_path / hub_revisions.LOCK).exists()


def test_online_asks_the_hub_and_locks(cache, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    asked = []

    class FakeApi:
        def model_info(self, repo, revision=None, timeout=None):
            asked.append(("model", repo, revision))
            return type("Info", (), {"sha": B})()

        def dataset_info(self, repo, revision=None, timeout=None):
            asked.append(("dataset", repo, revision))
            return type("Info", (), {"sha": A})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert hub_revisions.resolve("org/m", "v1", tmp_path) == B
    assert hub_revisions.resolve("org/m", "v1", tmp_path) == B  # the lock: the hub once
    assert hub_revisions.resolve("org/m", None, tmp_path, "dataset") == A  # same id, a dataset
    assert asked == [("model", "org/m", "v1"), ("dataset", "org/m", "main")]
    lock = json.loads((tmp_path / hub_revisions.LOCK).read_text())
    assert lock["org/m@v1"]["how"] == "hub" and lock["datasets/org/m@main"]["sha"] == A


def test_a_commit_is_its_own_resolution(cache, tmp_path):
    assert hub_revisions.resolve("org/m", A.upper(), tmp_path) == A
    assert not (tmp_path / hub_revisions.LOCK).exists()


def test_a_bad_lock_entry_is_refused(cache, tmp_path):
    (tmp_path / hub_revisions.LOCK).write_text(json.dumps({"org/m@main": {"sha": "abc"}}))
    with pytest.raises(ConfigError, match="'org/m@main' has no 40-hex-digit 'sha'"):
        hub_revisions.resolve("org/m", "main", tmp_path)


def test_a_lock_nested_too_deep_is_refused_in_one_line(cache, tmp_path):
    """The revisions lock 100k deep was a RecursionError: now the lock that does not parse."""
    (tmp_path / hub_revisions.LOCK).write_text(DEEP_JSON)
    with pytest.raises(
        ConfigError, match="is not valid JSON .* deeper than 100 levels\\); fix or delete"
    ):
        hub_revisions.resolve("org/m", "main", tmp_path)


def test_the_mask_studys_hub_sft_dataset_is_pinned_to_a_commit(cache, tmp_path, monkeypatch):
    """yahma/alpaca-cleaned had no revision in the run cache's key or the provenance: a finetune
    was restored after the dataset changed upstream. Now its params name the commit."""
    import datasets

    from ablate.mask import sft_data

    lock = tmp_path / "res" / hub_revisions.LOCK
    lock.parent.mkdir()
    lock.write_text(json.dumps({"datasets/yahma/alpaca-cleaned@main": {"sha": A}}))
    assert sft_data.pinned("yahma/alpaca-cleaned", tmp_path / "res") == f"yahma/alpaca-cleaned@{A}"
    lock.write_text(json.dumps({"datasets/yahma/alpaca-cleaned@main": {"sha": B}}))  # moved
    assert sft_data.pinned("yahma/alpaca-cleaned", tmp_path / "res") == f"yahma/alpaca-cleaned@{B}"
    assert sft_data.pinned(f"org/d@{A.upper()}", None) == f"org/d@{A}"  # a sha: no lookup
    local = tmp_path / "pairs.jsonl"
    assert sft_data.pinned(str(local), tmp_path / "res") == str(local)  # a file is its content
    loaded = []
    row = {"instruction": "i", "input": "", "output": "o"}
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **kw: loaded.append((a, kw)) or [row])
    assert sft_data.load_rows(f"yahma/alpaca-cleaned@{B}") == [row]
    assert loaded == [(("yahma/alpaca-cleaned",), {"split": "train", "revision": B})]
