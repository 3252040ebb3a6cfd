"""A signal after the training ended: during the final evaluation, the final save,
the summary or the removal of ``checkpoints/``. It waits until the outputs are complete; the job
then keeps a checkpoint of the finished training (``save_steps: 0``: none existed), since an
interrupted Snakemake can still delete those outputs, and the rerun writes them again from it,
the same weights, instead of training from step 0. Before, the signal killed the job in that
window with the training lost (``checkpoints/`` was also removed before the summary).

The signal's default action is the test's handler here (:class:`Killed`), so a job that does not
hold it fails the test instead of ending pytest."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from helpers import causal_finetune, synthetic_rows, weights

from ablate.core.outputs import checkpoint_integrity, provenance
from ablate.core.training import loop, saving
from ablate.mask import embedded
from ablate.mask.training.entries import pretrain
from ablate.mask.training.params import resolve_params

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
    # one window under keep_checkpoints: the rerun leaves what a run never signalled leaves
    params = {**PARAMS, "keep_checkpoints": window == "summary"}
    # the job ends normally, its outputs complete
    summary = causal_finetune(params, tiny_model_dir, sft, out)
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
    rerun = causal_finetune(params, tiny_model_dir, sft, out)
    assert rerun["resumed_from_step"] == 2 and rerun["steps_done"] == 2
    assert rerun["final_eval_loss"] == summary["final_eval_loss"]
    got = weights(out / "final")
    assert got.keys() == trained.keys()
    assert all(torch.equal(got[k], trained[k]) for k in trained)
    # gone once the rerun finished; kept checkpoints: those the training saved (none with
    # save_steps: 0) beside the run key, as a run never signalled leaves them
    left = out / checkpoint_integrity.CHECKPOINTS_DIR
    kept = sorted(os.listdir(left)) if left.exists() else None
    assert kept == ([checkpoint_integrity.RUN_KEY_FILE] if params["keep_checkpoints"] else None)


def _corpus_finetune(tmp_path: Path, tiny_model_dir: Path, tekken_dir: Path):
    """The finetune of :data:`PARAMS` under ``loss_vocab: corpus``, as a call: (out, run)."""
    params = {**PARAMS, "loss_vocab": "corpus", "weight_decay": 0.0}
    sft = embedded.write_sft(tmp_path / "sft.jsonl", seed=0, n=16)
    out = tmp_path / "run"
    return out, lambda: causal_finetune(params, tiny_model_dir, sft, out)


def _corpus_pretraining(tmp_path: Path, tiny_model_dir: Path, tekken_dir: Path):
    """A one-layer pretraining of the tied Tekken table under ``loss_vocab: corpus`` (the
    embedded default's base model, prepare_model), as a call: (out, run)."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": r["output"]}) + "\n" for r in synthetic_rows(30)))
    params = {**PARAMS, "batch_size": 2, "max_seq_len": 32, "eval_size": 1}
    params = resolve_params(params | {"loss_vocab": "corpus", "weight_decay": 0.0}, "pretrain")
    out = tmp_path / "run"
    arch = {"num_hidden_layers": 1}
    return out, lambda: pretrain(
        corpus=corpus, tokenizer_dir=tekken_dir, arch=arch, params=params, out_dir=out
    )


@pytest.mark.parametrize(
    "training",
    [_corpus_finetune, pytest.param(_corpus_pretraining, marks=pytest.mark.slow)],
    ids=["finetune", "pretraining"],
)
def test_a_signal_during_the_final_save_of_a_corpus_loss_run_keeps_a_resumable_checkpoint(
    training, tiny_model_dir, tekken_dir, tmp_path, monkeypatch, capsys, killable
):
    """``loss_vocab: corpus`` trains the table cut to the data's rows and makes it whole again
    for the final save; the checkpoint kept after a signal there is of the table as the run's
    steps (and its rerun, which cuts it before resuming) hold it: the rerun resumes it, trains
    no step and writes the same weights (the interrupted run's outputs are complete: an
    uninterrupted run's)."""
    out, run = training(tmp_path, tiny_model_dir, tekken_dir)
    original = saving.save_pretrained
    monkeypatch.setattr(saving, "save_pretrained", _sigterm_before(original))
    summary = run()
    monkeypatch.setattr(saving, "save_pretrained", original)
    printed = capsys.readouterr().out
    assert "each step covers the data's" in printed  # the table was cut
    assert "kept (checkpoint-2), from which a rerun writes them again" in printed
    trained = weights(out / "final")
    # Snakemake, interrupted meanwhile, left the job incomplete: the rerun deletes its outputs
    shutil.rmtree(out / "final")
    (out / checkpoint_integrity.SUMMARY_NAME).unlink()
    rerun = run()
    assert rerun["resumed_from_step"] == 2 and rerun["steps_done"] == 2
    assert rerun["final_eval_loss"] == summary["final_eval_loss"]
    got = weights(out / "final")
    assert got.keys() == trained.keys()
    assert all(torch.equal(got[k], trained[k]) for k in trained)
