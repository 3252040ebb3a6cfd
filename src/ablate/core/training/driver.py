"""``train_run``: one training run start to end: resume from the last complete checkpoint of the
same run, train (:mod:`.loop`; stop rules), restore the last good checkpoint after a non-finite
loss, the final save, ``summary.json`` with provenance and phases.

The study's :class:`TrainRun` writes the outputs: the core's, or, in a study's subclass that
trains a small model between frozen ones, its own.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ablate.core.execution import interrupts, parallel
from ablate.core.outputs import checkpoint_integrity, io, provenance
from ablate.core.outputs.phases import Phases
from ablate.core.training import loop, saving, vocab_rows
from ablate.core.training.loss import vocab_head_loss
from ablate.core.training.monitor import StopRules
from ablate.core.training.params import TrainingError, TrainParams, save_dtype
from ablate.core.training.recipe import Recipe


def _curves(log_history: list[dict]) -> dict[str, list[dict]]:
    train = [
        {k: e[k] for k in ("step", "loss", "learning_rate", "grad_norm") if k in e}
        for e in log_history
        if "loss" in e
    ]
    evals = [
        {"step": e["step"], "eval_loss": e["eval_loss"]} for e in log_history if "eval_loss" in e
    ]
    return {"train": train, "eval": evals}


@dataclass(frozen=True)
class TrainRun:
    """One training run as :func:`drive` takes it; a study with outputs of its own overrides
    :meth:`write` and :meth:`record_failure`. A checkpoint resumes only a run of the same
    ``run_key`` and ``inputs`` (by content); ``tokenizer`` and ``rows``: set by :func:`train_run`."""

    kind: str
    recipe: Recipe
    out_dir: Path
    run_key: dict[str, Any]
    summary_extra: dict[str, Any]
    config_slice: Any
    inputs: dict[str, str | os.PathLike]
    phases: Phases
    label: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    tokenizer: Any = None
    rows: Any = None

    def write(self, trainer: loop.Trainer) -> dict[str, Any] | None:
        """The outputs of ``trainer``'s final weights, in every process (a save may be a
        collective); returns process 0's summary (the others None)."""
        # the table whole for the save only: a checkpoint kept after it is of the cut table
        with contextlib.nullcontext() if self.rows is None else self.rows.whole():
            ckpt_info = saving.save_final(
                trainer,
                Path(self.out_dir),
                tokenizer=self.tokenizer,
                dtype=save_dtype(self.recipe.params),
                extra={"kind": self.kind, **self.record, "step": trainer.state.step},
                phases=self.phases,
            )
        return self._write(trainer, ckpt_info) if parallel.rank() == 0 else None

    def record_failure(self, trainer: loop.Trainer) -> Path | None:
        """The record of a run that kept no weights: where it was written (None: none)."""
        if parallel.rank() == 0:
            self._write(trainer, None)
        return Path(self.out_dir) / checkpoint_integrity.SUMMARY_NAME

    def _write(self, trainer: loop.Trainer, ckpt_info: dict[str, Any] | None) -> dict[str, Any]:
        """``summary.json`` (``ckpt_info`` None: no weights kept)."""
        state, params, phases = trainer.state, self.recipe.params, self.phases
        curves = _curves(state.log_history)
        evals = [e["eval_loss"] for e in curves["eval"]]
        tp = trainer.throughput.summary()
        tp["train_runtime_s"] = trainer.train_s
        summary = {
            "kind": self.kind,
            **self.record,
            "steps_done": state.step,
            "max_steps": params.max_steps,
            "stop": trainer.stop,
            "resumed_from_step": trainer.resumed_from_step,
            "final_train_loss": curves["train"][-1]["loss"] if curves["train"] else None,
            "final_eval_loss": evals[-1] if evals else None,
            "best_eval_loss": min(evals) if evals else None,
            "curves": curves,
            "throughput": tp,
            "tokens_seen": state.tokens_seen,
            "checkpoint": ckpt_info,
            "params": params.as_dict(),
            **self.summary_extra,
            "provenance": provenance.collect(
                config_slice=self.config_slice
                if self.config_slice is not None
                else {**self.record, "params": params.as_dict()},
                inputs=self.inputs,
                started=phases.started,
                extra={"training_segments": saving.segments(state)},
            ),
            "phases": phases.as_dict(),  # after provenance: its git call and fingerprints count
        }
        io.write_json(Path(self.out_dir) / checkpoint_integrity.SUMMARY_NAME, summary)
        return summary


def _corpus_head_loss(params: TrainParams, train_dataset, eval_dataset):
    """``loss_vocab: corpus``: the head scored over the data's own ids, held-out ones included."""
    if params.loss_vocab != "corpus":
        return None
    blocks = [
        ds[i]["input_ids"]
        for ds in (train_dataset, eval_dataset)
        if ds is not None
        for i in range(len(ds))
    ]
    return vocab_head_loss(t for b in blocks for t in b)


def _cut_table(model, tokenizer, head_loss, params: TrainParams, label: str):
    """``loss_vocab: corpus``: the tied table cut to the data's rows where it can be. Returns
    (the cut or None, the rows a step covers)."""
    table = model.get_input_embeddings().weight.shape[0]
    pad = getattr(tokenizer, "pad_token_id", None)
    why = vocab_rows.why_not(model, params)
    rows = None if why else vocab_rows.cut(model, head_loss.ids, extra=[pad])
    covered = f"all {table} rows ({why})" if why else f"the data's {len(rows.ids)} of {table} rows"
    print(f"[{label}] loss_vocab: corpus: each step covers {covered}", flush=True)
    return rows, table if rows is None else len(rows.ids)


def _resume(trainer: loop.Trainer, ckpt: Path) -> bool:
    """Load ``ckpt`` into ``trainer``: everything, or, when a stop rule had already fired at its
    step (killed before the final save), only what the outputs need. Returns whether it had."""
    prior = saving.load_state(ckpt, loop.State, trainer.params.max_steps)
    prior_stop = StopRules(trainer.params).replay(prior.log_history)
    if prior_stop:
        saving.load_stopped(trainer, ckpt, prior)
        trainer.stop_rules.stop = prior_stop
        return True
    saving.load(trainer, ckpt)
    return False


def _train(
    trainer: loop.Trainer,
    resumed_from: Path | None,
    stopped: bool,
    phases: Phases,
    watch: interrupts.InterruptWatch,
) -> float | None:
    """Train on unless a stop rule had already fired; a study's own evaluation measures a fresh
    start's weights first. Returns the training's seconds (None when nothing trained)."""
    if stopped:
        return None
    with phases("train"):
        if resumed_from is None and trainer.spec.recipe.evaluation is not None:
            trainer.spec.recipe.evaluation(0)
        saving.begin_segment(trainer, resumed_from)
        t0 = time.perf_counter()
        loop.train(trainer, watch)
        train_s = time.perf_counter() - t0
    # the optimizer steps alone; the rest of "train" is evals, saves, the loop's set-up
    phases.add("train.steps", sum(trainer.throughput.step_times))
    return train_s


def restore_last_good(trainer: loop.Trainer, stop, ckpt_dir: Path, label: str) -> bool:
    """After a non-finite loss: load the weights of the last complete checkpoint before it
    (False: there is none)."""
    good = [
        c
        for c in checkpoint_integrity.complete_checkpoints(ckpt_dir)
        if checkpoint_integrity.step_of(c) < stop["step"]
    ]
    if not good:
        return False
    saving.load_weights(trainer, good[-1])
    stop["detail"]["restored_from_step"] = checkpoint_integrity.step_of(good[-1])
    print(
        f"[{label}] non-finite loss at step {stop['step']}: final = checkpoint {good[-1].name}",
        flush=True,
    )
    return True


def _final_eval(trainer: loop.Trainer, stop: dict[str, Any], phases: Phases) -> None:
    """Evaluate the final weights unless their step was evaluated last, so the summary's last
    evaluation belongs to them (the eval loss: not after a non-finite loss)."""
    state, evaluation = trainer.state, trainer.spec.recipe.evaluation
    nonfinite = stop["reason"] == "nonfinite"
    if evaluation is not None:
        at = stop["detail"]["restored_from_step"] if nonfinite else state.step
        if evaluation.last_step() != at:
            with phases("final_eval"):
                evaluation(at)  # its stop, if any, comes after the training's
    elif (
        not nonfinite
        and trainer.eval_data is not None
        and not any(e.get("step") == state.step and "eval_loss" in e for e in state.log_history)
    ):
        with phases("final_eval"):
            state.log_history.append({"step": state.step, "eval_loss": loop.evaluate(trainer)})


def train_run(
    run: TrainRun,
    *,
    model,
    tokenizer,
    train_dataset,
    eval_dataset,
    reporters: tuple = (),
) -> dict[str, Any]:
    """Train ``model`` into ``run.out_dir``; returns the summary."""
    params, out_dir, phases, kind = run.recipe.params, Path(run.out_dir), run.phases, run.kind
    label = run.label or kind
    out_dir.mkdir(parents=True, exist_ok=True)
    head_loss = _corpus_head_loss(params, train_dataset, eval_dataset)
    rows, run_key = None, run.run_key
    if head_loss is not None:  # a checkpoint holds the table as cut: resume only into that cut
        rows, covered = _cut_table(model, tokenizer, head_loss, params, label)
        run_key = {**run_key, "embedding_rows": covered}
    ckpt_dir = out_dir / checkpoint_integrity.CHECKPOINTS_DIR
    recipe = run.recipe if head_loss is None else replace(run.recipe, head_loss=head_loss)
    spec = loop.Spec(
        ckpt_dir, label, tokenizer.pad_token_id, recipe=recipe, reporters=tuple(reporters)
    )
    with phases("setup"):
        trainer = loop.setup(
            spec, model=model, train_dataset=train_dataset, eval_dataset=eval_dataset
        )
    summary = drive(replace(run, run_key=run_key, tokenizer=tokenizer, rows=rows), trainer)
    if parallel.rank() == 0:
        print(
            f"[{label}] done: {summary['steps_done']} steps, stop reason "
            f"{summary['stop']['reason']}, final checkpoint {summary['checkpoint']['path']} "
            f"({summary['checkpoint']['format']})",
            flush=True,
        )
    return summary


def drive(run: TrainRun, trainer: loop.Trainer) -> dict[str, Any]:
    """``trainer`` trained to its end as ``run`` says; returns process 0's summary (the others:
    their rank and steps)."""
    label, phases = trainer.spec.label, run.phases
    # sharded and whole checkpoints do not load each other: a change between them starts fresh
    run_key = {**run.run_key, "checkpoint_layout": "sharded" if trainer.sharded else "whole"}
    resume_from, stopped = saving.resume_from(
        Path(trainer.spec.checkpoints), run_key, run.inputs, lambda ckpt: _resume(trainer, ckpt)
    )
    if resume_from and parallel.rank() == 0:
        print(f"[{label}] resuming from {resume_from} (step {trainer.state.step})", flush=True)
    # a signal in the loop saves and stops; once the training ended, it waits for the outputs
    with interrupts.InterruptWatch() as watch:
        trainer.train_s = _train(trainer, resume_from, bool(stopped), phases, watch)
        watch.hold()
        if resume_from:
            trainer.resumed_from_step = checkpoint_integrity.step_of(resume_from)
        return _finish(run, trainer, watch)


def _finish(run: TrainRun, trainer: loop.Trainer, watch: interrupts.InterruptWatch) -> dict:
    """The outputs of the ended training, ``watch`` holding a signal meanwhile."""
    label, state, stop, phases = trainer.spec.label, trainer.state, trainer.stop, run.phases
    ckpt_dir = Path(trainer.spec.checkpoints)
    if stop["reason"] == "nonfinite" and not restore_last_good(trainer, stop, ckpt_dir, label):
        record = run.record_failure(trainer)
        raise TrainingError(
            f"{label}: loss became non-finite at step {stop['step']} before any checkpoint was "
            "saved; nothing good to keep (lower the learning rate?)"
            + (f". See {record}" if record else "")
        )
    _final_eval(trainer, stop, phases)
    summary = run.write(trainer)

    def save_last() -> Path | None:
        # the finished training as a checkpoint, unless one is at its step (a non-finite stop's
        # weights are an earlier checkpoint's). Its weights may be in the save dtype: enough, as
        # a rerun from it trains no step and writes the same outputs
        newest = checkpoint_integrity.newest_complete(ckpt_dir)
        if stop["reason"] != "nonfinite" and (
            newest is None or checkpoint_integrity.step_of(newest) != state.step
        ):
            with phases("save_last"):
                return saving.save(trainer)
        return None

    with phases("remove_checkpoints"):
        saving.end_of_run(
            watch, ckpt_dir, keep=trainer.params.keep_checkpoints, save_last=save_last
        )
    if parallel.rank() != 0:  # rank 0 alone saves and reports (the weights are the same)
        return {"rank": parallel.rank(), "steps_done": state.step}
    return summary
