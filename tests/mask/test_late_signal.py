"""A signal after the training ended: during the final evaluation, the final save,
the summary or the removal of ``checkpoints/``. It waits until the outputs are complete; the job
then keeps a checkpoint of the finished training (``save_steps: 0``: none existed), since an
interrupted Snakemake can still delete those outputs, and the rerun writes them again from it,
the same weights, instead of training from step 0. Before, the signal killed the job in that
window with the training lost (``checkpoints/`` was also removed before the summary).

The signal's default action is the test's handler here (:class:`Killed`), so a job that does not
hold it fails the test instead of ending pytest."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from helpers import causal_finetune, weights

from ablate.core.outputs import checkpoint_integrity, provenance
from ablate.core.training import loop, saving
from ablate.mask import embedded

PARAMS = {
    "max_steps": 2,
    "batch_size": 4,
    "grad_accum": 1,
    "learning_rate": 1e-3,
    "lr_scheduler": "constant",
    "optim": "adamw_torch",
    "warmup_ratio": 0.0,
    "max_seq_len": 64,
    "eval_size": 4,
    "eval_steps": 3,  # past max_steps: the final evaluation is the only one
    "eval_batch_size": 4,
    "save_steps": 0,  # the embedded default's: no checkpoint during the training
    "logging_steps": 1,
    "no_learning_steps": 0,
    "plateau_patience": 0,
}


class Killed(Exception):
    """The signal's default action: the job ends where it is."""


@pytest.fixture
def killable():
    """SIGTERM ends the job where it is (raising :class:`Killed`) unless the job holds it."""

    def kill(signum, frame):
        raise Killed(signal.Signals(signum).name)

    before = signal.signal(signal.SIGTERM, kill)
    yield
    signal.signal(signal.SIGTERM, before)


def _sigterm_before(fn, when=lambda *a, **kw: True):
    def wrapped(*args, **kwargs):
        if when(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
        return fn(*args, **kwargs)

    return wrapped


#: where the signal comes: the function it comes before (module, name, only when called so)
WINDOWS = {
    "final_eval": (loop, "evaluate", None),
    "final_save": (saving, "save_pretrained", None),
    "summary": (provenance, "collect", None),  # the summary's provenance block
    "removing_checkpoints": (
        shutil,
        "rmtree",
        lambda path, *a, **kw: Path(path).name == checkpoint_integrity.CHECKPOINTS_DIR,
    ),
}


@pytest.mark.parametrize("window", list(WINDOWS))
def test_a_signal_after_the_training_keeps_it(
    window, tiny_model_dir, tmp_path, monkeypatch, capsys, killable
):
    sft = embedded.write_sft(tmp_path / "sft.jsonl", seed=0, n=16)
    out = tmp_path / "run"
    module, name, when = WINDOWS[window]
    original = getattr(module, name)
    monkeypatch.setattr(module, name, _sigterm_before(original, *([when] if when else [])))
    # the job ends normally, its outputs complete
    summary = causal_finetune(PARAMS, tiny_model_dir, sft, out)
    monkeypatch.setattr(module, name, original)
    printed = capsys.readouterr().out
    assert summary["steps_done"] == 2 and (out / checkpoint_integrity.SUMMARY_NAME).is_file()
    checkpoint_integrity.verify(out / "final")
    trained = weights(out / "final")
    if window == "removing_checkpoints":  # the last act: nothing left to lose
        assert not (out / checkpoint_integrity.CHECKPOINTS_DIR).exists()
        return
    assert (
        "[interrupt] SIGTERM: the training is finished: writing its outputs first, then stopping"
        in printed
    )
    assert (
        f"[interrupt] SIGTERM came while the outputs were written: they are complete; "
        f"{out / checkpoint_integrity.CHECKPOINTS_DIR} kept (checkpoint-2), from which a rerun writes them "
        "again" in printed
    )
    # Snakemake, interrupted meanwhile, left the job incomplete: the rerun deletes its outputs
    shutil.rmtree(out / "final")
    (out / checkpoint_integrity.SUMMARY_NAME).unlink()
    rerun = causal_finetune(PARAMS, tiny_model_dir, sft, out)
    assert rerun["resumed_from_step"] == 2 and rerun["steps_done"] == 2
    assert rerun["final_eval_loss"] == summary["final_eval_loss"]
    got = weights(out / "final")
    assert got.keys() == trained.keys()
    assert all(torch.equal(got[k], trained[k]) for k in trained)
    assert not (out / checkpoint_integrity.CHECKPOINTS_DIR).exists()  # gone once the rerun finished
