"""A rerun resumes only from a checkpoint trained on the same inputs (by content, not path) whose
files match their hash manifest, on the tiny model: a changed base model or SFT data at the same
path starts fresh and says why; a truncated or bit-flipped newest checkpoint is set aside and the
one before it resumed from, to the uninterrupted run's weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import FAST, causal_finetune, synthetic_rows, weights

from ablate.core.outputs import checkpoint_integrity
from ablate.core.training import saving
from ablate.core.training.pretraining import random_model
from ablate.mask.tiny import tiny_ministral3_config

# one xdist worker: the module fixture `uninterrupted` (a finetune) is trained once, not on both
pytestmark = pytest.mark.xdist_group("mask:resume_checks")

PARAMS = {**FAST, "max_steps": 2, "save_steps": 1, "eval_size": 0, "keep_checkpoints": True}


def _rows_file(path: Path, seed: int) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(seed=seed)))
    return path


def _base(path: Path, tiny_model_dir: Path, seed: int) -> Path:
    """A base model folder with its manifest, as a pretraining's ``final`` (its identity)."""
    if not path.exists():
        shutil.copytree(tiny_model_dir, path)  # the tokenizer
    random_model(tiny_ministral3_config(), seed=seed).save_pretrained(path)
    checkpoint_integrity.write_manifest(path)
    return path


def _killed_after(out: Path, step: int) -> None:
    """As if killed after checkpoint-``step`` was saved: later checkpoints and outputs lost."""
    for c in checkpoint_integrity.complete_checkpoints(out / checkpoint_integrity.CHECKPOINTS_DIR):
        if int(c.name.split("-")[-1]) > step:
            shutil.rmtree(c)
    shutil.rmtree(out / "final")
    (out / checkpoint_integrity.SUMMARY_NAME).unlink()


@pytest.mark.parametrize("changed", ["model", pytest.param("data", marks=pytest.mark.slow)])
def test_checkpoints_of_other_inputs_at_the_same_path_are_not_resumed(
    tiny_model_dir, tmp_path, capfd, changed
):
    base = _base(tmp_path / "base", tiny_model_dir, seed=0)
    data = _rows_file(tmp_path / "sft.jsonl", seed=0)
    out = tmp_path / "run"
    causal_finetune(PARAMS, base, data, out)
    _killed_after(out, 1)
    if changed == "model":  # another pretraining wrote the base model's folder
        _base(base, tiny_model_dir, seed=1)
    else:
        _rows_file(data, seed=1)
    capfd.readouterr()
    summary = causal_finetune(PARAMS, base, data, out)
    err = capfd.readouterr().err
    path = base if changed == "model" else data
    assert f"were trained on another {changed} ({path} changed): starting fresh" in err
    assert summary["resumed_from_step"] is None and summary["steps_done"] == PARAMS["max_steps"]


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, tmp_path_factory):
    """The reference run (checkpoints 1 and 2 kept) and its final weights, run once."""
    tmp = tmp_path_factory.mktemp("resume_checks")
    base = _base(tmp / "base", tiny_model_dir, seed=0)
    data = _rows_file(tmp / "sft.jsonl", seed=0)
    out = tmp / "run"
    causal_finetune(PARAMS, base, data, out)
    return base, data, out, weights(out / "final")


def _truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _flip_a_bit(path: Path) -> None:
    """One bit of the first tensor's bytes (after the safetensors header): still loads."""
    raw = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")
    raw[start + 3] ^= 0x40  # an exponent bit of the first float32
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", [_truncate, _flip_a_bit], ids=["truncated", "bit-flipped"])
def test_a_damaged_checkpoint_is_set_aside_and_the_one_before_resumed(uninterrupted, capfd, damage):
    base, data, ref_out, ref_weights = uninterrupted
    out = ref_out.with_name(f"run-{damage.__name__}")
    shutil.copytree(ref_out, out)
    _killed_after(out, 2)
    ckpts = out / checkpoint_integrity.CHECKPOINTS_DIR
    damage(ckpts / "checkpoint-2" / "model.safetensors")
    capfd.readouterr()
    summary = causal_finetune(PARAMS, base, data, out)
    err = capfd.readouterr().err
    assert "[resume] checkpoint-2 set aside as corrupt-checkpoint-2: checkpoint " in err
    assert (ckpts / "corrupt-checkpoint-2" / "model.safetensors").is_file()  # kept for a look
    assert summary["resumed_from_step"] == 1
    got = weights(out / "final")
    assert all(torch.equal(got[k], ref_weights[k]) for k in ref_weights)


@pytest.mark.parametrize(
    "manifest", ["{not json", '{"step": 2}'], ids=["unparsable", "without-files"]
)
def test_a_checkpoint_with_an_unreadable_manifest_is_set_aside_and_the_one_before_resumed(
    uninterrupted, capfd, manifest
):
    base, data, ref_out, ref_weights = uninterrupted
    out = ref_out.with_name(f"run-manifest-{len(manifest)}")
    shutil.copytree(ref_out, out)
    _killed_after(out, 2)
    ckpts = out / checkpoint_integrity.CHECKPOINTS_DIR
    (ckpts / "checkpoint-2" / checkpoint_integrity.MANIFEST_NAME).write_text(manifest)
    capfd.readouterr()
    summary = causal_finetune(PARAMS, base, data, out)
    err = capfd.readouterr().err
    assert "[resume] checkpoint-2 set aside as corrupt-checkpoint-2: checkpoint " in err
    assert "checkpoint_manifest.json is unreadable" in err
    assert summary["resumed_from_step"] == 1
    got = weights(out / "final")
    assert all(torch.equal(got[k], ref_weights[k]) for k in ref_weights)


def test_an_unreadable_run_key_sets_the_checkpoints_aside_and_starts_fresh(uninterrupted, capfd):
    """Whose checkpoints they are is unknown: none is resumed, none is deleted."""
    base, data, ref_out, ref_weights = uninterrupted
    out = ref_out.with_name("run-key")
    shutil.copytree(ref_out, out)
    _killed_after(out, 2)
    (out / checkpoint_integrity.CHECKPOINTS_DIR / checkpoint_integrity.RUN_KEY_FILE).write_text(
        '{"config": '
    )
    capfd.readouterr()
    summary = causal_finetune(PARAMS, base, data, out)
    err = capfd.readouterr().err
    assert "run_key.json is unreadable (JSONDecodeError: " in err
    assert "checkpoints set aside as corrupt-checkpoints, starting fresh" in err
    assert (
        out / "corrupt-checkpoints" / "checkpoint-2" / checkpoint_integrity.CHECKPOINT_MARKER
    ).is_file()
    assert summary["resumed_from_step"] is None and summary["steps_done"] == PARAMS["max_steps"]
    got = weights(out / "final")  # the same training from step 0
    assert all(torch.equal(got[k], ref_weights[k]) for k in ref_weights)


class _Payload:
    """Unpickled, it calls ``Path.touch`` on ``target``."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_a_payload_in_a_checkpoint_file_sets_it_aside_and_the_one_before_is_resumed(
    uninterrupted, capfd, tmp_path
):
    """The file replaced and the manifest written again (as by the host that wrote the copy): the
    loader refuses it, and the checkpoint counts as corrupt instead of failing every rerun."""
    base, data, ref_out, ref_weights = uninterrupted
    out = ref_out.with_name("run-payload")
    shutil.copytree(ref_out, out)
    _killed_after(out, 2)
    ckpt, ran = (
        out / checkpoint_integrity.CHECKPOINTS_DIR / "checkpoint-2",
        tmp_path / "payload-ran",
    )
    torch.save({"state": _Payload(ran)}, ckpt / saving.OPTIMIZER)
    checkpoint_integrity.mark_complete(ckpt, 2, saving.FORMAT_WHOLE)
    capfd.readouterr()
    summary = causal_finetune(PARAMS, base, data, out)
    err = capfd.readouterr().err
    assert not ran.exists()
    assert (
        "[resume] checkpoint-2 set aside as corrupt-checkpoint-2: "
        f"{ckpt / saving.OPTIMIZER} holds objects no checkpoint holds "
        "(global: GLOBAL getattr): refused, nothing of it ran" in err
    )
    assert "weights_only" not in err
    assert summary["resumed_from_step"] == 1
    got = weights(out / "final")
    assert all(torch.equal(got[k], ref_weights[k]) for k in ref_weights)


def test_a_resume_under_another_numerics_environment_records_both(
    uninterrupted, monkeypatch, capfd
):
    """The weights of steps 1 and 2 were computed under two environments: the record names the
    steps each trained, not the last one's for both."""
    base, data, ref_out, _ = uninterrupted
    out = ref_out.with_name("run-numerics")
    shutil.copytree(ref_out, out)
    _killed_after(out, 1)
    monkeypatch.setenv("NCCL_ALGO", "Tree")  # a NUMERICS_ENV variable, inert on one CPU process
    summary = causal_finetune(PARAMS, base, data, out)
    assert summary["resumed_from_step"] == 1
    first, second = summary["provenance"]["training_segments"]
    assert (first["steps"], second["steps"]) == ([1, 1], [2, 2])
    assert "NCCL_ALGO" not in first["hardware"]["numerics"]["env"]
    assert second["hardware"]["numerics"]["env"]["NCCL_ALGO"] == "Tree"
    assert first["world_size"] == second["world_size"] == 1
    # the provenance's own hardware is the last segment's (the final save's)
    assert summary["provenance"]["hardware"]["numerics"]["env"]["NCCL_ALGO"] == "Tree"
