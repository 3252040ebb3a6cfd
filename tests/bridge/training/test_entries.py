"""One grid entry's training (ablate.bridge.training.entries): its outputs, restore-best, early
stopping, a non-finite loss, resuming after a kill or a signal (the micro pair)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from bridge_fixtures import MICRO_PARAMS

from ablate.bridge import params as bridge_params
from ablate.bridge.training import entries, recipe
from ablate.core.outputs import checkpoint_integrity


def test_train_entry_writes_every_output(bridge_entry):
    out, summary = bridge_entry
    checkpoint_integrity.verify(out / "translator")
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["run_id"] == "micro-0001" == summary["run_id"]
    steps = [c["step"] for c in on_disk["curve"]]
    assert steps[0] == 0 and steps[-1] == on_disk["steps_done"]  # step 0, every N, the end
    assert on_disk["peak"] == max(c["accuracy"] for c in on_disk["curve"])
    assert on_disk["degradation"] == pytest.approx(on_disk["peak"] - on_disk["final"])
    for key in ("peak_step", "stop_reason", "wall_s", "train_tokens", "throughput", "params",
                "compression_ratio", "provenance"):  # fmt: skip
        assert key in on_disk, key
    assert on_disk["provenance"]["run_id"] == "micro-0001"
    samples = pd.read_parquet(out / "samples.parquet")
    assert len(samples) == MICRO_PARAMS["eval_size"]
    assert {"id", "prediction", "gold", "correct", "em", "f1"} <= set(samples.columns)
    assert samples["correct"].mean() == pytest.approx(on_disk["final"])


def _train_gsm8k(run_id: str, params: dict, cards: dict, world_files: dict, out):
    """One training run of the embedded pair on the embedded world's GSM8K: its summary."""
    return entries.train_entry(
        bridge_params.RunSpec.parse(run_id, params, "gsm8k"),
        source_card=cards["source"],
        target_card=cards["target"],
        train_file=world_files["gsm8k_train"],
        eval_file=world_files["gsm8k_test"],
        out_dir=out,
    )


def test_restore_best_reevaluates_the_best_state(bridge_world, bridge_cards, tmp_path, monkeypatch):
    """Scripted evaluations peak at step 2 and fall after: final must be step 2's weights."""
    scripted = iter([0.25, 0.75, 0.25, 0.0])  # steps 0, 2, 4, then the final re-evaluation
    seen = []

    def fake_evaluate(pair, translator, items):
        seen.append({k: v.clone() for k, v in translator.state_dict().items()})
        acc = next(scripted)
        n = len(items)
        return [
            {"id": it["id"], "prediction": "", "extracted": "", "gold": "1",
             "correct": i < acc * n, "em": float(i < acc * n), "f1": float(i < acc * n)}
            for i, it in enumerate(items)
        ]  # fmt: skip

    monkeypatch.setattr(recipe, "_evaluate", fake_evaluate)
    params = {**MICRO_PARAMS, "early_stopping": False, "lr": 0.05}
    s = _train_gsm8k("restore", params, bridge_cards, bridge_world, tmp_path)
    assert [c["accuracy"] for c in s["curve"]] == [0.25, 0.75, 0.25]
    assert s["peak"] == 0.75 and s["peak_step"] == 2 and s["restored_from_step"] == 2
    assert len(seen) == 4
    at_peak, at_end, final = seen[1], seen[2], seen[3]
    assert any(not torch.equal(at_peak[k], at_end[k]) for k in at_peak)  # training moved on
    assert all(torch.equal(at_peak[k], final[k]) for k in at_peak)  # the final is the best
    assert s["final"] == 0.0 and s["degradation"] == 0.75  # final is measured, not copied
    from ablate.bridge import translator

    saved = translator.load(tmp_path / "translator").state_dict()
    assert all(torch.equal(at_peak[k], saved[k]) for k in at_peak)


def test_early_stopping_with_patience(bridge_world, bridge_cards, tmp_path, monkeypatch):
    def flat(pair, translator, items):
        return [{"id": it["id"], "prediction": "", "extracted": "", "gold": "1",
                 "correct": False, "em": 0.0, "f1": 0.0} for it in items]  # fmt: skip

    monkeypatch.setattr(recipe, "_evaluate", flat)
    params = {**MICRO_PARAMS, "steps": 20, "eval_every": 2, "patience": 2}
    s = _train_gsm8k("stop", params, bridge_cards, bridge_world, tmp_path)
    assert s["stop_reason"] == "early_stopping" and s["steps_done"] == 4
    assert [c["step"] for c in s["curve"]] == [0, 2, 4]


def test_a_nonfinite_loss_ends_at_the_last_checkpoint_by_the_loops_rule(
    bridge_world, bridge_cards, tmp_path, monkeypatch
):
    """A NaN loss at step 5 (checkpoints at 2 and 4): the loop's stop rule (the one of every
    training) reads it at the next logging step and the final translator is checkpoint 4's, the
    weights its evaluation saw; a NaN before any checkpoint fails the job, as a finetune's does."""
    from ablate.bridge import translator
    from ablate.bridge.pair import Pair
    from ablate.core.training.params import TrainingError

    seen, loss_once = {}, Pair.loss
    evaluate_once = recipe._evaluate

    def recording(pair, model, items):
        seen[len(seen)] = {k: v.clone() for k, v in model.state_dict().items()}
        return evaluate_once(pair, model, items)

    def nan_at(bad):
        def loss(pair, model, items, step, *a, **kw):
            total, parts, n = loss_once(pair, model, items, step, *a, **kw)
            return (total * float("nan") if step == bad else total), parts, n

        return loss

    monkeypatch.setattr(recipe, "_evaluate", recording)
    monkeypatch.setattr(Pair, "loss", nan_at(5))
    params = {**MICRO_PARAMS, "steps": 6, "early_stopping": False, "restore_best": False}
    s = _train_gsm8k("nan", {**params, "log_every": 1}, bridge_cards, bridge_world, tmp_path)
    assert s["stop_reason"] == "nonfinite" and s["steps_done"] == 5
    assert [c["step"] for c in s["curve"]] == [0, 2, 4] and s["final"] == s["curve"][-1]["accuracy"]
    saved = translator.load(tmp_path / "translator").state_dict()
    assert all(torch.equal(seen[2][k], saved[k]) for k in saved)  # step 4's, evaluated
    monkeypatch.setattr(Pair, "loss", nan_at(1))
    with pytest.raises(TrainingError, match="non-finite at step 1 before any checkpoint"):
        _train_gsm8k("nan1", params, bridge_cards, bridge_world, tmp_path / "early")


def test_a_killed_training_resumes_from_its_last_checkpoint(
    bridge_world, bridge_cards, tmp_path, monkeypatch, capsys
):
    """Killed in step 5 (checkpoints at steps 2 and 4, their evaluations): the rerun resumes at 4,
    says so, and ends with the curve, losses and translator of an uninterrupted run; the
    checkpoints are gone once the run finished."""
    from ablate.bridge import translator
    from ablate.bridge.pair import Pair
    from ablate.core.training import saving

    params = {**MICRO_PARAMS, "steps": 6, "early_stopping": False, "log_every": 1}

    def run(out):
        return _train_gsm8k("resume", params, bridge_cards, bridge_world, out)

    ref = run(tmp_path / "ref")
    assert ref["resumed_from_step"] is None
    loss_once = Pair.loss

    def killed_in_5(pair, model, items, step, *a, **kw):
        if step == 5:
            raise KeyboardInterrupt("killed")  # as a lost instance: no clean-up runs
        return loss_once(pair, model, items, step, *a, **kw)

    monkeypatch.setattr(Pair, "loss", killed_in_5)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(out)
    ckpts = checkpoint_integrity.complete_checkpoints(out / checkpoint_integrity.CHECKPOINTS_DIR)
    assert [c.name for c in ckpts] == ["checkpoint-4"]  # the older one went once 4 was complete
    names = {saving.WEIGHTS, saving.EVALUATION, saving.LOOP_STATE}
    assert {p.name for p in ckpts[0].iterdir()} >= names | {"rng_state.pth"}
    (
        out / checkpoint_integrity.CHECKPOINTS_DIR / "checkpoint-6"
    ).mkdir()  # cut off mid-save: ignored
    monkeypatch.setattr(Pair, "loss", loss_once)
    capsys.readouterr()
    s = run(out)
    assert (
        f"resuming from {out / checkpoint_integrity.CHECKPOINTS_DIR / 'checkpoint-4'} (step 4)"
        in (capsys.readouterr().out)
    )
    assert s["resumed_from_step"] == 4 and s["steps_done"] == 6
    # the record names both segments of the training (where each ran), not the last alone
    assert [g["steps"] for g in s["provenance"]["training_segments"]] == [[1, 4], [5, 6]]
    assert s["curve"] == ref["curve"] and s["final"] == ref["final"]
    for a, b in zip(s["losses"], ref["losses"], strict=True):
        assert a["step"] == b["step"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    got = translator.load(out / "translator").state_dict()
    want = translator.load(tmp_path / "ref" / "translator").state_dict()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    assert not (out / checkpoint_integrity.CHECKPOINTS_DIR).exists()


class Killed(Exception):
    """SIGTERM's default action here: the job ends where it is (pytest lives on)."""


def _signalled_while_saving(run, monkeypatch, capsys) -> dict:
    """``run()`` with a SIGTERM sent as the translator is saved (raised as :class:`Killed` if
    it ends the job): its result, after checking that the signal waited for the outputs."""
    import os
    import signal

    from ablate.bridge import translator

    save = translator.save

    def signalled_save(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return save(*args, **kwargs)

    def kill(signum, frame):
        raise Killed

    monkeypatch.setattr(translator, "save", signalled_save)
    before = signal.signal(signal.SIGTERM, kill)
    try:
        result = run()
    finally:
        signal.signal(signal.SIGTERM, before)
    monkeypatch.setattr(translator, "save", save)
    assert "[interrupt] SIGTERM came while the outputs were written" in capsys.readouterr().out
    return result


def _delete_outputs(out) -> None:
    """The job's outputs removed, as Snakemake deletes those of a job it marked incomplete."""
    import shutil

    for name in ("translator", "samples.parquet", "summary.json"):
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()


def _rerun_resumes_at(step: int, run, out, first: dict) -> dict:
    """After a signalled run: its newest checkpoint alone kept, at ``step``; the rerun after
    Snakemake deleted the outputs resumes there, to the same curve and translator, and removes
    the checkpoints. Returns the rerun's result."""
    from ablate.bridge import translator

    kept = checkpoint_integrity.complete_checkpoints(out / checkpoint_integrity.CHECKPOINTS_DIR)
    assert [c.name for c in kept] == [f"checkpoint-{step}"]
    trained = translator.load(out / "translator").state_dict()
    _delete_outputs(out)
    again = run()
    assert again["resumed_from_step"] == step and again["curve"] == first["curve"]
    got = translator.load(out / "translator").state_dict()
    assert all(torch.equal(got[k], trained[k]) for k in trained)
    assert not (out / checkpoint_integrity.CHECKPOINTS_DIR).exists()
    return again


def test_a_signal_while_the_outputs_are_written_keeps_the_training(
    bridge_world, bridge_cards, tmp_path, monkeypatch, capsys
):
    """SIGTERM while the translator is saved (the training ended at step 4, checkpointed there):
    the signal waits, the outputs are completed, the checkpoints stay (they went before the
    outputs were written); after Snakemake deleted the outputs of the job it marked
    incomplete, the rerun resumes at step 4, not step 0, to the same translator."""

    out = tmp_path / "run"

    def run():
        return _train_gsm8k("late-signal", MICRO_PARAMS, bridge_cards, bridge_world, out)

    first = _signalled_while_saving(run, monkeypatch, capsys)
    checkpoint_integrity.verify(out / "translator")
    assert json.loads((out / "summary.json").read_text())["steps_done"] == 4
    _rerun_resumes_at(4, run, out, first)


def test_a_signal_after_a_last_step_between_checkpoints_keeps_that_step(
    bridge_world, bridge_cards, tmp_path, monkeypatch, capsys
):
    """5 steps, checkpoints at 2 and 4: SIGTERM while the translator is saved keeps a checkpoint
    of the finished training (step 5, saved then: the core driver's, as a finetune's), so the
    rerun after Snakemake deleted the outputs resumes at step 5 and trains no step again, to the
    same translator and curve (the bridge's own driver kept checkpoint 4 and retrained step 5)."""

    params, out = {**MICRO_PARAMS, "steps": 5}, tmp_path / "run"

    def run():
        return _train_gsm8k("last-step", params, bridge_cards, bridge_world, out)

    first = _signalled_while_saving(run, monkeypatch, capsys)
    assert first["steps_done"] == 5 and [c["step"] for c in first["curve"]] == [0, 2, 4, 5]
    assert _rerun_resumes_at(5, run, out, first)["final"] == first["final"]


def _early_stopping_run(run_id, restore_best, world, cards, out, monkeypatch):
    """A micro run whose evaluations are flat (nothing correct): early stopping (patience 2,
    every 2 steps of 20) ends it at step 4; returns the call that trains it into ``out``."""

    def flat(pair, translator, items):
        return [{"id": it["id"], "prediction": "", "extracted": "", "gold": "1",
                 "correct": False, "em": 0.0, "f1": 0.0} for it in items]  # fmt: skip

    monkeypatch.setattr(recipe, "_evaluate", flat)
    params = {**MICRO_PARAMS, "steps": 20, "eval_every": 2, "patience": 2}
    params["restore_best"] = restore_best
    return lambda: _train_gsm8k(run_id, params, cards, world, out)


def test_a_signal_after_an_early_stop_keeps_the_stop(
    bridge_world, bridge_cards, tmp_path, monkeypatch, capsys
):
    """Early stopping at step 4 of 20 (flat evaluations, patience 2), SIGTERM while the translator
    is saved: the checkpoint kept at step 4 carries the stop in its loop state, so the rerun
    after Snakemake deleted the outputs trains no step past it (it had gone on to step 6: the
    evaluation's stop was not in what a resume replays) and writes the same translator."""

    out = tmp_path / "run"
    run = _early_stopping_run("late-stop", False, bridge_world, bridge_cards, out, monkeypatch)
    first = _signalled_while_saving(run, monkeypatch, capsys)
    assert first["stop_reason"] == "early_stopping" and first["steps_done"] == 4
    again = _rerun_resumes_at(4, run, out, first)
    assert again["stop_reason"] == "early_stopping" and again["steps_done"] == 4


@pytest.mark.parametrize("damage", ["drop", "shape"])
def test_a_kept_best_state_that_does_not_fit_the_translator_is_set_aside(
    bridge_world, bridge_cards, tmp_path, monkeypatch, capsys, damage
):
    """The checkpoint kept after a late signal carries the best state (restore_best) in
    evaluation.pt; one whose tensors do not fit the translator (a tensor missing, another shape;
    its manifest written again) failed every rerun at the run's end (`load_state_dict`'s
    RuntimeError, the second review's C): now it is set aside naming the file and the tensor, and
    the rerun starts fresh to the same translator."""
    from ablate.bridge import translator
    from ablate.core.training import saving

    out = tmp_path / "run"
    run = _early_stopping_run("late-best", True, bridge_world, bridge_cards, out, monkeypatch)
    first = _signalled_while_saving(run, monkeypatch, capsys)
    trained = translator.load(out / "translator").state_dict()
    (kept,) = checkpoint_integrity.complete_checkpoints(out / checkpoint_integrity.CHECKPOINTS_DIR)
    best = torch.load(kept / saving.EVALUATION, weights_only=True)
    name = sorted(best)[0]
    if damage == "drop":
        del best[name]
    else:
        best[name] = best[name][:1]
    torch.save(best, kept / saving.EVALUATION)
    checkpoint_integrity.write_manifest(kept)
    _delete_outputs(out)
    again = run()
    said = "".join(capsys.readouterr())
    assert f"{kept / saving.EVALUATION} does not fit this run ({name}: " in said, said[-3000:]
    assert again["resumed_from_step"] is None and again["curve"] == first["curve"]
    got = translator.load(out / "translator").state_dict()
    assert all(torch.equal(got[k], trained[k]) for k in trained)
