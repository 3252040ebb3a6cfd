"""What a run id pins of the bridge's models and data (ablate.bridge.pins): hub revision spellings,
a branch pinned as its commit, for models and datasets (fast, offline)."""

from __future__ import annotations

import json

from helpers import bridge_config

from ablate.bridge import grid, layout


def test_hub_revision_spellings_are_one_model():
    sha = "0123456789abcdef0123456789abcdef01234567"
    runs = []
    for rev in (None, "main", sha, sha.upper()):
        bridge = bridge_config("latentwire.yaml")
        bridge["source"]["revision"] = rev
        runs.append(grid.resolve(bridge).entries["1a"].run_id)
    assert runs[0] == runs[1] and runs[2] == runs[3] and runs[0] != runs[2]


def test_a_branch_is_its_commit_in_the_run_id(tmp_path, monkeypatch):
    """`revision: main` on two days the branch named two commits: two run ids (the name alone
    made one), each pinned in its results folder's lock; the register job gets the commit."""
    from huggingface_hub import constants

    from ablate.core.outputs import hub_revisions

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    bridge = bridge_config("latentwire.yaml")
    refs = tmp_path / "hub" / ("models--" + bridge["source"]["path"].replace("/", "--")) / "refs"
    refs.mkdir(parents=True)
    ids = []
    for sha in ("a" * 40, "b" * 40):
        (refs / "main").write_text(sha)  # what the cache's last download of main got
        config = {"bridge": bridge, "results": str(tmp_path / sha[0])}
        study = grid.resolve(bridge, config["results"])
        ids.append(study.entries["1a"].run_id)
        assert study.entries["1a"].identity["source"]["revision"] == sha
        lock = json.loads((tmp_path / sha[0] / hub_revisions.LOCK).read_text())
        assert lock[f"{bridge['source']['path']}@main"]["sha"] == sha
        register = next(j for j in layout.jobs(config, study) if j.name == "register/source")
        assert register.config["model"]["revision"] == sha
        assert register.config["requested_revision"] is None  # as written: null
    assert ids[0] != ids[1]
    assert bridge["source"]["revision"] is None  # the config itself is left as written


def test_a_dataset_branch_is_its_commit_in_the_run_id(tmp_path):
    """A hub dataset's `revision` (null: main) is pinned like a model's: the run id and the
    data job (which loads that commit) name it."""
    from ablate.core.outputs import hub_revisions

    bridge = bridge_config("latentwire.yaml")
    key = f"datasets/{bridge['data']['gsm8k']['path']}@main"
    ids = []
    for sha in ("a" * 40, "b" * 40):
        results = tmp_path / sha[0]
        results.mkdir()
        (results / hub_revisions.LOCK).write_text(json.dumps({key: {"sha": sha}}))
        study = grid.resolve(bridge, str(results))
        ids.append(study.entries["1a"].run_id)
        assert study.entries["1a"].identity["data"]["gsm8k"]["revision"] == sha
        config = {"bridge": bridge, "results": str(results)}
        data_job = next(j for j in layout.jobs(config, study) if j.rule == "bridge_data")
        assert data_job.config["gsm8k"]["revision"] == sha
    assert ids[0] != ids[1]
