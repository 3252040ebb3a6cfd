"""What a miss says (:mod:`ablate.core.reruns.runcache_miss`), from hand-made manifests: the
nearest entry of the same job, each difference with both values, the rest counted. A job's line
through the run cache itself: tests/core/reruns/test_runcache.py (``test_a_miss_names_*``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DEEP_JSON

from ablate.core.reruns import runcache_miss as M

PARTS = {
    "format": 3,
    "rule": "finetune",
    "wildcards": {"variant": "3A"},
    "params": {"finetune": {"learning_rate": 0.001, "max_steps": 200}},
    "inputs": ["aa", "bb"],
    "code": "c1",
    "packages": {"torch": "2.13.0"},
}


def manifest(tmp_path: Path, name: str, stored_at: str = "2026-11-28T10:00:00+0000", **edits):
    path = tmp_path / name / "manifest.json"
    path.parent.mkdir()
    parts = {**PARTS, **edits}
    path.write_text(json.dumps({"key": name * 12, "parts": parts, "stored_at": stored_at}))
    return path


def test_the_nearest_entry_of_the_same_job_is_named_with_both_values(tmp_path):
    far = manifest(tmp_path, "a", params={"finetune": {"learning_rate": 0.1, "max_steps": 9}})
    near = manifest(tmp_path, "b", params={"finetune": {"learning_rate": 0.1, "max_steps": 200}})
    other = manifest(tmp_path, "c", wildcards={"variant": "3B"})  # another job: never nearest
    line = M.nearest_difference([far, near, other], PARTS, ["in/a", "in/b"], {})
    assert line == (
        "missed: the nearest entry of this job (bbbbbbbbbbbb, stored 2026-11-28T10:00:00+0000) "
        "differs in params finetune.learning_rate 0.1 -> 0.001"
    )
    assert M.nearest_difference([other], PARTS, [], {}) is None


def test_inputs_packages_and_a_key_absent_on_one_side_are_named(tmp_path):
    old = manifest(
        tmp_path,
        "a",
        inputs=["aa", "zz"],
        packages={"torch": "2.11.0", "gone": "1"},
        params={"finetune": {"learning_rate": 0.001}},
    )
    line = M.nearest_difference([old], PARTS, ["in/a", "in/b"], {})
    assert "params finetune.max_steps <absent> -> 200" in line
    assert "input in/b" in line and 'package gone "1" -> <absent>' in line
    assert line.endswith(" and 1 more"), line  # four differences, three named


def test_a_code_change_names_the_files_or_says_code_where_the_entry_lists_none(tmp_path):
    listed = manifest(tmp_path, "a", code="c0")
    data = json.loads(listed.read_text())
    data["code_files"] = {"ablate/x.py": "1", "scripts/finetune.py": "2"}
    listed.write_text(json.dumps(data))
    code = {"ablate/x.py": "1", "scripts/finetune.py": "3", "ablate/new.py": "4"}
    line = M.nearest_difference([listed], PARTS, [], code)
    assert line.endswith("differs in code ablate/new.py, scripts/finetune.py"), line
    unlisted = manifest(tmp_path, "b", code="c0")
    line = M.nearest_difference([unlisted], PARTS, [], code)
    assert line.endswith("differs in the code (a module of ablate or a job script)"), line


@pytest.mark.parametrize("text", ["{not json", DEEP_JSON])
def test_an_unreadable_manifest_is_skipped(tmp_path, text):
    bad = tmp_path / "x" / "manifest.json"
    bad.parent.mkdir()
    bad.write_text(text)
    assert M.nearest_difference([bad], PARTS, [], {}) is None
