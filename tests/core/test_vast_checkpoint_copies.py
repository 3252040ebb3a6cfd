"""The Vast executor's checkpoint copies (snakemake_executor_plugin_ablate_vast.checkpoints), with
the SSH transfers replaced by local streams: a copy is checked against its manifest when it comes
back and before it is shipped to a retry (one that fails is set aside, never used), and the remote
folder of the shipping ``mkdir`` stays one path whatever its characters."""

from __future__ import annotations

import io
import json
import logging
import shlex
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from ablate.core.outputs import checkpoint_integrity
from snakemake_executor_plugin_ablate_vast import checkpoints as copies


class FakeProc:
    """A finished ``ssh`` whose stdout is ``out`` (a tar stream) and whose stdin is kept."""

    def __init__(self, argv, out: bytes = b""):
        self.argv = argv
        self.stdin = io.BytesIO()
        self.stdin.close = lambda: None  # tarfile closes it; the test reads it after
        self.stdout = io.BytesIO(out)
        self.stderr = io.BytesIO(b"")

    def wait(self):
        return 0

    def kill(self):
        pass


def _runner(folder: str) -> SimpleNamespace:
    return SimpleNamespace(
        job=SimpleNamespace(output=[f"{folder}/summary.json"]),
        port=22,
        host="203.0.113.1",
        instance_id=7,
        logger=logging.getLogger("vast-test"),
        _ssh_options=lambda: [],
    )


def _checkpoint(ckpts: Path, step: int) -> Path:
    ckpt = ckpts / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    checkpoint_integrity.mark_complete(ckpt, step, checkpoint_integrity.FORMAT_SAVE_PRETRAINED)
    (ckpts / checkpoint_integrity.RUN_KEY_FILE).write_text("{}")
    return ckpt


def _flip_a_bit(ckpt: Path) -> None:
    f = ckpt / "model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[100] ^= 1
    f.write_bytes(bytes(raw))


@pytest.fixture
def popen(monkeypatch):
    """The Popen calls of the module, answered by :class:`FakeProc` (``out``: their stdout)."""
    calls = []
    state = {"out": b""}

    def fake(argv, **kw):
        calls.append(FakeProc(argv, state["out"]))
        return calls[-1]

    monkeypatch.setattr(copies.subprocess, "Popen", fake)
    return calls, state


def test_the_shipping_mkdir_keeps_a_folder_with_a_space_or_semicolon_one_path(
    tmp_path, monkeypatch, popen
):
    monkeypatch.chdir(tmp_path)
    folder = "results/a b;touch pwned"
    _checkpoint(Path(folder) / checkpoint_integrity.CHECKPOINTS_DIR, 2)
    shipped = copies.CheckpointCopies(_runner(folder)).ship_newest()
    assert shipped == {f"{folder}/checkpoints": 2}
    command = popen[0][0].argv[-1]
    words = list(shlex.shlex(command, posix=True, punctuation_chars=True))
    assert words[:4] == ["mkdir", "-p", f"{copies.REMOTE_WORKDIR}/{folder}/checkpoints", "&&"]


def test_a_damaged_copy_is_not_shipped_to_a_retry(tmp_path, monkeypatch, popen, caplog):
    monkeypatch.chdir(tmp_path)
    ckpt = _checkpoint(Path("results/ft") / checkpoint_integrity.CHECKPOINTS_DIR, 2)
    _flip_a_bit(ckpt)
    with caplog.at_level(logging.WARNING):
        assert copies.CheckpointCopies(_runner("results/ft")).ship_newest() == {}
    assert not popen[0]  # nothing sent
    assert "set aside as corrupt-checkpoint-2" in caplog.text and "altered" in caplog.text
    assert (ckpt.parent / "corrupt-checkpoint-2").is_dir() and not ckpt.exists()


def _tar_of(*paths: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for p in paths:
            t.add(p, arcname=p.name)
    return buf.getvalue()


@pytest.mark.parametrize("damaged", [False, True], ids=["whole", "bit-flipped"])
def test_a_copy_coming_back_is_checked_against_its_manifest(
    tmp_path, monkeypatch, popen, caplog, damaged
):
    remote = _checkpoint(tmp_path / "remote" / checkpoint_integrity.CHECKPOINTS_DIR, 4)
    if damaged:
        _flip_a_bit(remote)
    monkeypatch.chdir(tmp_path)
    popen[1]["out"] = _tar_of(remote, remote.parent / checkpoint_integrity.RUN_KEY_FILE)
    d = "results/ft/checkpoints"
    runner = _runner("results/ft")
    # the instance's answer to "which is your newest complete checkpoint"
    runner._ssh = lambda *a, **kw: SimpleNamespace(returncode=0, stdout=json.dumps({d: 4}))
    c = copies.CheckpointCopies(runner)
    with caplog.at_level(logging.WARNING):
        assert c.sync() == ([] if damaged else [4])
    local = Path(d)
    if damaged:
        assert f"copy of {d}/checkpoint-4 set aside as corrupt-checkpoint-4" in caplog.text
        assert not (local / "checkpoint-4").exists() and (local / "corrupt-checkpoint-4").is_dir()
        assert c.sync() == [] and len(popen[0]) == 1  # not fetched again at the next look
    else:
        checkpoint_integrity.verify(local / "checkpoint-4")


@pytest.mark.parametrize(
    "manifest", ["{not json", '{"step": 2}'], ids=["unparsable", "without-files"]
)
def test_a_copy_with_an_unreadable_manifest_is_set_aside_and_the_older_one_shipped(
    tmp_path, monkeypatch, popen, caplog, manifest
):
    monkeypatch.chdir(tmp_path)
    ckpts = Path("results/ft") / checkpoint_integrity.CHECKPOINTS_DIR
    _checkpoint(ckpts, 1)
    newest = _checkpoint(ckpts, 2)
    (newest / checkpoint_integrity.MANIFEST_NAME).write_text(manifest)
    with caplog.at_level(logging.WARNING):
        shipped = copies.CheckpointCopies(_runner("results/ft")).ship_newest()
    assert shipped == {str(ckpts): 1}
    assert "checkpoint_manifest.json is unreadable" in caplog.text
    assert (ckpts / "corrupt-checkpoint-2").is_dir() and not newest.exists()
