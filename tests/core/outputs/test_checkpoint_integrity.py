"""A checkpoint's manifest and markers (:mod:`ablate.core.outputs.checkpoint_integrity`): a final
checkpoint written whole or not at all, every missing, truncated, altered or added file named in one
line, the hashing overlapped with a load, a foreign model directory let through, the training
checkpoints a rerun may resume from, one set aside, and a full disk named as such."""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import DEEP_JSON

from ablate.core.models.modeling import load_causal_lm
from ablate.core.outputs import checkpoint_integrity
from ablate.core.outputs.checkpoint_integrity import CheckpointError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _copy_save(src: Path):
    def save(tmp: Path) -> str:
        for f in src.iterdir():
            shutil.copy(f, tmp / f.name)
        return checkpoint_integrity.FORMAT_SAVE_PRETRAINED

    return save


@pytest.fixture()
def written(tiny_model_dir, tmp_path) -> Path:
    """A final checkpoint written the way the pipeline writes one."""
    info = checkpoint_integrity.write_final(
        tmp_path / "ft", _copy_save(tiny_model_dir), extra={"step": 1}
    )
    return Path(info["path"])


# ------------------------------------------------------------------ final checkpoints
def test_pipeline_checkpoint_without_manifest_never_loads(written):
    load_causal_lm(written)  # whole: loads
    (written / checkpoint_integrity.MANIFEST_NAME).unlink()
    with pytest.raises(CheckpointError, match="has no checkpoint_manifest.json"):
        load_causal_lm(written)


def test_checkpoint_of_an_older_run_is_known_by_its_summary(tiny_model_dir, tmp_path):
    """No writer marker (written before it existed), but our summary.json beside it names it."""
    out = tmp_path / "ft"
    final = Path(shutil.copytree(tiny_model_dir, out / "final"))
    summary = {"kind": "finetune", "checkpoint": {"path": str(final), "format": "x"}}
    (out / checkpoint_integrity.SUMMARY_NAME).write_text(json.dumps(summary))
    assert checkpoint_integrity.written_here(final)
    with pytest.raises(CheckpointError, match="has no checkpoint_manifest.json"):
        load_causal_lm(final)


def test_file_added_after_the_manifest_is_reported(written):
    (written / "adapter_config.json").write_text("{}")
    with pytest.raises(
        CheckpointError, match=r"adapter_config\.json are not in its manifest \(added after"
    ):
        checkpoint_integrity.verify(written)
    with pytest.raises(CheckpointError, match="not in its manifest"):
        load_causal_lm(written)


def test_snakemake_timestamp_is_not_an_added_file(written):
    (written / ".snakemake_timestamp").touch()  # Snakemake's mtime file in directory() outputs
    checkpoint_integrity.verify(written)


def test_foreign_model_dir_still_loads(tiny_model_dir, tmp_path):
    foreign = Path(shutil.copytree(tiny_model_dir, tmp_path / "final"))
    assert not checkpoint_integrity.written_here(foreign)
    assert checkpoint_integrity.check_before_load(foreign) is None
    load_causal_lm(foreign)


def test_write_final_replaces_only_when_complete(tiny_model_dir, tmp_path):
    first = checkpoint_integrity.write_final(
        tmp_path, _copy_save(tiny_model_dir), extra={"step": 1}
    )
    before = checkpoint_integrity.verify(first["path"])

    def broken(tmp: Path) -> str:
        (tmp / "model.safetensors").write_bytes(b"\0" * 10)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        checkpoint_integrity.write_final(tmp_path, broken)
    assert checkpoint_integrity.verify(first["path"]) == before
    assert before["step"] == 1 and before["format"] == checkpoint_integrity.FORMAT_SAVE_PRETRAINED


def test_pending_verify_raises_at_result_what_verify_raises(hashed_checkpoint):
    final = hashed_checkpoint
    assert checkpoint_integrity.PendingVerify(final).result() == checkpoint_integrity.verify(final)
    shard = final / "shard-1.bin"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # same size: only the hash can tell
    shard.write_bytes(bytes(data))
    pending = checkpoint_integrity.start_check_before_load(
        final
    )  # the layout is fine: no error yet
    with pytest.raises(CheckpointError, match=r"shard-1\.bin does not match its recorded sha256"):
        pending.result()
    shard.write_bytes(b"short")  # a size change fails at once, before any load starts
    with pytest.raises(CheckpointError, match=r"shard-1\.bin has 5 bytes"):
        checkpoint_integrity.start_check_before_load(final)


def test_sha256_file_is_the_files_sha256(tmp_path):
    f = tmp_path / "w.bin"
    data = bytes(range(256)) * 5000  # more than one read of the default chunk
    f.write_bytes(data)
    assert checkpoint_integrity.sha256_file(f) == hashlib.sha256(data).hexdigest()


def test_a_missing_file_is_named(hashed_checkpoint):
    (hashed_checkpoint / "shard-2.bin").unlink()
    with pytest.raises(CheckpointError, match=r"file shard-2\.bin is missing$") as failed:
        checkpoint_integrity.verify(hashed_checkpoint)
    assert str(hashed_checkpoint) in str(failed.value)


@pytest.mark.parametrize(
    "manifest",
    [
        '{"files": {"a": ',
        '{"step": 1}',
        '{"files": {"a": {"bytes": "3", "sha256": "x"}}}',
        '{"files": []}',
        DEEP_JSON,
    ],
    ids=["cut-off", "no-files", "string-bytes", "not-a-mapping", "too-deep"],
)
def test_a_manifest_cut_off_or_altered_is_refused_in_one_line(hashed_checkpoint, manifest):
    (hashed_checkpoint / checkpoint_integrity.MANIFEST_NAME).write_text(manifest)
    with pytest.raises(CheckpointError, match="is unreadable .*; cut off or altered") as failed:
        checkpoint_integrity.read_manifest(hashed_checkpoint)
    assert "\n" not in str(failed.value)


def _training_checkpoint(ckpts: Path, name: str, marked: bool = True) -> Path:
    d = ckpts / name
    d.mkdir(parents=True)
    (d / "weights.bin").write_bytes(b"w")
    if marked:
        checkpoint_integrity.mark_complete(d, checkpoint_integrity.step_of(d) or 0, "x")
    return d


def test_complete_checkpoints_are_the_marked_ones_by_step(tmp_path):
    ckpts = tmp_path / "checkpoints"
    assert checkpoint_integrity.complete_checkpoints(ckpts) == []  # no folder yet
    assert checkpoint_integrity.newest_complete(ckpts) is None
    ten, two = (
        _training_checkpoint(ckpts, "checkpoint-10"),
        _training_checkpoint(ckpts, "checkpoint-2"),
    )
    _training_checkpoint(ckpts, "checkpoint-30", marked=False)  # cut off mid-save
    _training_checkpoint(ckpts, "checkpoint-last")  # not a step
    (ckpts / "checkpoint-40").write_text("a file")
    assert checkpoint_integrity.complete_checkpoints(ckpts) == [two, ten]  # 2 before 10
    assert checkpoint_integrity.newest_complete(ckpts) == ten
    marker = json.loads((ten / checkpoint_integrity.CHECKPOINT_MARKER).read_text())
    assert marker == {"step": 10, "format": "x"}
    assert checkpoint_integrity.verify(ten)["step"] == 10


@pytest.mark.parametrize(
    "name, step",
    [("checkpoint-12", 12), ("checkpoint-0", 0), ("checkpoint-x", None), ("final", None),
     ("corrupt-checkpoint-3", None), ("checkpoint-", None)],
)  # fmt: skip
def test_step_of(name, step):
    assert checkpoint_integrity.step_of(Path("/r/checkpoints") / name) == step


def test_set_aside_never_replaces_one_set_aside_before(tmp_path):
    ckpts = tmp_path / "checkpoints"
    first = checkpoint_integrity.set_aside(_training_checkpoint(ckpts, "checkpoint-2"))
    second = checkpoint_integrity.set_aside(_training_checkpoint(ckpts, "checkpoint-2"))
    assert [first.name, second.name] == ["corrupt-checkpoint-2", "corrupt-2-checkpoint-2"]
    assert first.is_dir() and second.is_dir() and not (ckpts / "checkpoint-2").exists()
    assert checkpoint_integrity.complete_checkpoints(ckpts) == []  # never resumed from
    elsewhere = tmp_path / "aside"
    elsewhere.mkdir()
    moved = checkpoint_integrity.set_aside(_training_checkpoint(ckpts, "checkpoint-4"), elsewhere)
    assert moved == elsewhere / "corrupt-checkpoint-4"


def _raised(exc: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise exc from inner
    except BaseException as outer:
        return outer


@pytest.mark.parametrize(
    "exc, full",
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (RuntimeError(f"writer thread: OSError: {errno.errorcode[errno.ENOSPC]}: No space left on device"), True),
        (_raised(RuntimeError("unexpected pos"), OSError(errno.ENOSPC, "full")), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (_raised(RuntimeError("unexpected pos"), ValueError("bad")), False),
    ],
    ids=["enospc", "quota", "quoted", "caused-by", "eacces", "other-cause"],
)  # fmt: skip
def test_out_of_space_reads_the_errno_the_text_and_the_cause(exc, full):
    assert checkpoint_integrity.out_of_space(exc) is full


def test_a_full_disk_is_named_in_one_line_and_other_errors_pass(tmp_path):
    where = tmp_path / "not" / "made" / "yet"
    with pytest.raises(CheckpointError) as failed:
        with checkpoint_integrity.naming_a_full_disk("saving checkpoint-2", where):
            raise OSError(errno.ENOSPC, "No space left on device")
    msg = str(failed.value)
    assert msg.startswith(
        f"saving checkpoint-2 failed: no space left on the disk holding {where} ("
    )
    assert "GB free of" in msg and msg.endswith("then rerun") and "\n" not in msg
    with pytest.raises(ValueError, match="not a disk"):
        with checkpoint_integrity.naming_a_full_disk("saving", where):
            raise ValueError("not a disk")
