"""The code part of a checkpoints folder's identity (ablate.core.training.resume): the modules the
run imported, by content. An edited one starts the rerun fresh and is named; a module only one of
the two runs imported does not count (another code path, or imported by one that changed)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import DEEP_JSON

from ablate.core.outputs import checkpoint_integrity
from ablate.core.training import resume


def _saved_run(tmp_path: Path) -> Path:
    ckpts = tmp_path / checkpoint_integrity.CHECKPOINTS_DIR
    assert resume.prepare_resume(ckpts, {"kind": "t"}) is None  # the first run's look
    ckpt = ckpts / "checkpoint-1"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"weights")
    checkpoint_integrity.mark_complete(ckpt, 1, checkpoint_integrity.FORMAT_SAVE_PRETRAINED)
    return ckpts


def _edit_key(ckpts: Path, edit) -> None:
    key_file = ckpts / checkpoint_integrity.RUN_KEY_FILE
    key = json.loads(key_file.read_text())
    edit(key["code"])
    key_file.write_text(json.dumps(key))


def test_an_edited_module_of_the_run_starts_it_fresh_and_is_named(tmp_path, capfd):
    ckpts = _saved_run(tmp_path)
    assert resume.prepare_resume(ckpts, {"kind": "t"}) == ckpts / "checkpoint-1"
    _edit_key(
        ckpts, lambda code: code.update({"ablate.core.outputs.checkpoint_integrity": "0" * 64})
    )
    capfd.readouterr()
    assert resume.prepare_resume(ckpts, {"kind": "t"}) is None
    assert (
        f"[resume] {ckpts} were trained by other code (ablate.core.outputs.checkpoint_integrity changed): "
        "starting fresh" in capfd.readouterr().err
    )


def test_a_module_only_one_run_imported_does_not_count(tmp_path):
    ckpts = _saved_run(tmp_path)
    _edit_key(ckpts, lambda code: code.update({"ablate.not_imported_now": "0" * 64}))
    assert resume.prepare_resume(ckpts, {"kind": "t"}) == ckpts / "checkpoint-1"


def test_a_run_key_nested_too_deep_sets_the_folder_aside(tmp_path, capfd):
    """``run_key.json`` nested 100k deep raised RecursionError out of prepare_resume: every rerun
    failed. It is unreadable as a cut-off one is: the folder set aside, the run fresh."""
    ckpts = _saved_run(tmp_path)
    key_file = ckpts / checkpoint_integrity.RUN_KEY_FILE
    key_file.write_text(DEEP_JSON)
    capfd.readouterr()
    assert resume.prepare_resume(ckpts, {"kind": "t"}) is None
    assert (tmp_path / "corrupt-checkpoints" / "checkpoint-1").is_dir()
    assert (
        f"[resume] {key_file} is unreadable (ValueError: {key_file} holds JSON nested deeper "
        "than 100 levels): checkpoints set aside as corrupt-checkpoints, starting fresh\n"
    ) == capfd.readouterr().err


def test_a_manifest_nested_too_deep_sets_its_checkpoint_aside(tmp_path, capfd):
    """A checkpoint's manifest nested 100k deep: the checkpoint is set aside as one that fails
    its manifest, and the one before it is resumed from (it was a RecursionError)."""
    ckpts = _saved_run(tmp_path)
    newer = ckpts / "checkpoint-2"
    newer.mkdir()
    (newer / "model.safetensors").write_bytes(b"weights 2")
    checkpoint_integrity.mark_complete(newer, 2, checkpoint_integrity.FORMAT_SAVE_PRETRAINED)
    (newer / checkpoint_integrity.MANIFEST_NAME).write_text(DEEP_JSON)
    capfd.readouterr()
    assert resume.prepare_resume(ckpts, {"kind": "t"}) == ckpts / "checkpoint-1"
    assert (ckpts / "corrupt-checkpoint-2").is_dir()
    assert "[resume] checkpoint-2 set aside as corrupt-checkpoint-2: " in capfd.readouterr().err
