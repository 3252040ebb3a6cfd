"""``train_run``: one training run start to end: resume from the last complete checkpoint of the
same run, train (:mod:`.loop`; stop rules), restore the last good checkpoint after a non-finite
loss, the final save, ``summary.json`` with provenance and phases."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ablate.core import checkpoint_integrity, interrupts, io, parallel, provenance
from ablate.core.phases import Phases
from ablate.core.training import loop, saving, vocab_rows
from ablate.core.training.loss import vocab_head_loss
from ablate.core.training.monitor import StopRules
from ablate.core.training.params import TrainingError, save_dtype


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
    """One training run as :func:`train_run` takes it: what it trains with and what its summary
    says besides the training's outcome (one object, so the summary is written from the same
    facts on every path).

    ``params``: resolved; ``out_dir``: ``final/``, ``summary.json``, ``checkpoints/``;
    ``run_key``: a checkpoint resumes only a run of the same key; ``summary_extra``: the
    summary's study keys; ``config_slice``: the job's (None: ``{**record, "params": params}``);
    ``inputs``: fingerprinted in the provenance, and a checkpoint resumes only a run whose inputs
    have the same content; ``phases``: the run's timer, started by the
    caller. A study's: ``label`` (log prefix, default ``kind``), ``record`` (written into the
    summary and the final manifest, e.g. its attention policy) and ``hooks`` (its forward kwargs
    and micro-batches, :class:`~.loop.Hooks`; the head loss is set here)."""

    kind: str
    params: dict[str, Any]
    out_dir: Path
    run_key: dict[str, Any]
    summary_extra: dict[str, Any]
    config_slice: Any
    inputs: dict[str, str | os.PathLike]
    phases: Phases
    label: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    hooks: loop.Hooks = field(default_factory=loop.Hooks)


@dataclass
class _Outcome:
    """How the training went: the loop's final state, the stop, the measured throughput."""

    state: loop.State
    stop: dict[str, Any]
    throughput: Any
    train_s: float | None
    resumed_from_step: int | None


def _corpus_head_loss(params: dict[str, Any], train_dataset, eval_dataset):
    """``loss_vocab: corpus`` (docs/training.md): the head scored over the data's own ids only;
    every target of a block or pair, held-out ones included, is one of them."""
    if params.get("loss_vocab") != "corpus":
        return None
    blocks = [
        ds[i]["input_ids"]
        for ds in (train_dataset, eval_dataset)
        if ds is not None
        for i in range(len(ds))
    ]
    return vocab_head_loss(t for b in blocks for t in b)


def _cut_table(model, tokenizer, head_loss, params: dict[str, Any], label: str):
    """``loss_vocab: corpus``: the tied table cut to the data's rows where it can be
    (:mod:`ablate.core.training.vocab_rows`). Returns (the cut or None, the rows a step covers)."""
    table = model.get_input_embeddings().weight.shape[0]
    pad = getattr(tokenizer, "pad_token_id", None)
    why = vocab_rows.why_not(model, params)
    rows = None if why else vocab_rows.cut(model, head_loss.ids, extra=[pad])
    covered = f"all {table} rows ({why})" if why else f"the data's {len(rows.ids)} of {table} rows"
    print(f"[{label}] loss_vocab: corpus: each step covers {covered}", flush=True)
    return rows, table if rows is None else len(rows.ids)


def _resume(run: loop.Run, ckpt: Path) -> bool:
    """Load ``ckpt`` into ``run``: everything, or only the weights and the loop's state when a
    stop rule had already fired at its save step (killed before the final save: training on
    would pass the stop). Returns whether it had."""
    prior = saving.load_state(ckpt)
    prior_stop = StopRules(run.params).replay(prior["log_history"])
    if prior_stop:
        saving.load_weights(run, ckpt)
        run.state = loop.State(**prior)
        run.stop_rules.stop = prior_stop
        return True
    saving.load(run, ckpt)
    return False


def _train(
    run: loop.Run,
    resumed_from: Path | None,
    stopped: bool,
    phases: Phases,
    watch: interrupts.InterruptWatch,
) -> float | None:
    """Train on from ``run``'s state (resumed from ``resumed_from``), unless a stop rule had
    already fired (``stopped``). Returns the training's seconds (None when nothing trained)."""
    if stopped:
        return None
    saving.begin_segment(run, resumed_from)
    t0 = time.perf_counter()
    with phases("train"):
        loop.train(run, watch)
    # the optimizer steps alone; the rest of "train" is evals, saves, the loop's set-up
    phases.add("train.steps", sum(run.throughput.step_times))
    return time.perf_counter() - t0


def restore_last_good(run: loop.Run, stop, ckpt_dir: Path, label: str) -> bool:
    """After a non-finite loss (the stop rules' ``stop``): load the weights of the last complete
    checkpoint before it and name its step in ``stop``'s detail (False: there is none)."""
    good = [
        c
        for c in checkpoint_integrity.complete_checkpoints(ckpt_dir)
        if checkpoint_integrity.step_of(c) < stop["step"]
    ]
    if not good:
        return False
    saving.load_weights(run, good[-1])
    stop["detail"]["restored_from_step"] = checkpoint_integrity.step_of(good[-1])
    print(
        f"[{label}] non-finite loss at step {stop['step']}: final = checkpoint {good[-1].name}",
        flush=True,
    )
    return True


def _final_eval(run: loop.Run, phases: Phases) -> None:
    """Evaluate once more unless the last step was evaluated, so the summary's last eval loss
    belongs to the final weights."""
    state = run.state
    if run.eval_data is not None and not any(
        e.get("step") == state.step and "eval_loss" in e for e in state.log_history
    ):
        with phases("final_eval"):
            state.log_history.append({"step": state.step, "eval_loss": loop.evaluate(run)})


def _write_summary(
    run: TrainRun, outcome: _Outcome, ckpt_info: dict[str, Any] | None, out_dir: Path
) -> dict[str, Any]:
    """The summary, written by rank 0 alone when data-parallel."""
    summary = _summary(run, outcome, ckpt_info)
    if parallel.rank() == 0:
        io.write_json(out_dir / checkpoint_integrity.SUMMARY_NAME, summary)
    return summary


def train_run(
    run: TrainRun,
    *,
    model,
    tokenizer,
    train_dataset,
    eval_dataset,
    reporters: tuple = (),
) -> dict[str, Any]:
    """Train ``model`` into ``run.out_dir`` (:func:`.loop.setup`, :func:`.loop.train`);
    ``reporters``: more of the loop's reporters (TensorBoard). Returns the summary."""
    params, out_dir, phases, kind = run.params, Path(run.out_dir), run.phases, run.kind
    label = run.label or kind
    out_dir.mkdir(parents=True, exist_ok=True)
    head_loss = _corpus_head_loss(params, train_dataset, eval_dataset)
    rows, run_key = None, run.run_key
    if head_loss is not None:  # a checkpoint holds the table as cut: resume only into that cut
        rows, covered = _cut_table(model, tokenizer, head_loss, params, label)
        run_key = {**run_key, "embedding_rows": covered}
    ckpt_dir = out_dir / checkpoint_integrity.CHECKPOINTS_DIR
    hooks = run.hooks if head_loss is None else replace(run.hooks, head_loss=head_loss)
    spec = loop.Spec(
        params, ckpt_dir, label, tokenizer.pad_token_id, hooks=hooks, reporters=tuple(reporters)
    )
    with phases("setup"):
        r = loop.setup(spec, model=model, train_dataset=train_dataset, eval_dataset=eval_dataset)
    # a run whose weights are sharded (FSDP2) checkpoints shards, any other run whole weights
    # (sharded masters gathered: any process count resumes them): neither loads the other's, so
    # a change between them starts fresh (N -> M sharded processes reshards)
    run_key = {**run_key, "checkpoint_layout": "sharded" if r.sharded else "whole"}
    resume_from, stopped = saving.resume_from(
        ckpt_dir, run_key, run.inputs, lambda ckpt: _resume(r, ckpt)
    )
    if resume_from:
        print(f"[{label}] resuming from {resume_from}", flush=True)
    # a signal in the loop saves and stops; once the training ended, it waits for the outputs
    with interrupts.InterruptWatch() as watch:
        train_s = _train(r, resume_from, bool(stopped), phases, watch)
        watch.hold()
        resumed_from_step = checkpoint_integrity.step_of(resume_from) if resume_from else None
        outcome = _Outcome(r.state, _stop(r), r.throughput, train_s, resumed_from_step)
        return _finish(run, r, outcome, rows, tokenizer, watch)


def _stop(r: loop.Run) -> dict[str, Any]:
    """The training's stop: a stop rule's, or its last step."""
    return r.stop_rules.stop or {
        "reason": "max_steps",
        "step": r.state.step,
        "detail": {"max_steps": r.params["max_steps"]},
    }


def _finish(
    run: TrainRun,
    r: loop.Run,
    outcome: _Outcome,
    rows,
    tokenizer,
    watch: interrupts.InterruptWatch,
) -> dict[str, Any]:
    """The outputs of the ended training, ``watch`` holding a signal meanwhile: the final
    evaluation, ``final/``, the summary, the checkpoints' removal last
    (:func:`~.saving.end_of_run`)."""
    params, out_dir, phases = run.params, Path(run.out_dir), run.phases
    label, state, stop = run.label or run.kind, outcome.state, outcome.stop
    ckpt_dir = out_dir / checkpoint_integrity.CHECKPOINTS_DIR
    if stop["reason"] == "nonfinite":
        if not restore_last_good(r, stop, ckpt_dir, label):
            _write_summary(run, outcome, None, out_dir)
            raise TrainingError(
                f"{label}: loss became non-finite at step {stop['step']} before any checkpoint was "
                f"saved; nothing good to keep (lower learning_rate?). See {out_dir / 'summary.json'}"
            )
    else:
        _final_eval(r, phases)
    if rows is not None:
        rows.restore()
    ckpt_info = saving.save_final(
        r,
        out_dir,
        tokenizer=tokenizer,
        dtype=save_dtype(params),
        extra={"kind": run.kind, **run.record, "step": state.step},
        phases=phases,
    )
    # process 0 alone writes (and computes) the summary; the others wait in end_of_run
    summary = _write_summary(run, outcome, ckpt_info, out_dir) if parallel.rank() == 0 else None

    def save_last() -> None:
        # the finished training as a checkpoint, unless one is at its step (a non-finite stop's
        # weights are an earlier checkpoint's: the rerun resumes there and stops alike). After
        # the final save, one process's weights may be in the save dtype: enough, as a rerun
        # from it trains no step and writes the same final weights
        newest = checkpoint_integrity.newest_complete(ckpt_dir)
        if stop["reason"] != "nonfinite" and (
            newest is None or checkpoint_integrity.step_of(newest) != state.step
        ):
            with phases("save_last"):
                saving.save(r)

    with phases("remove_checkpoints"):
        saving.end_of_run(watch, ckpt_dir, keep=params["keep_checkpoints"], save_last=save_last)
    if parallel.rank() != 0:  # rank 0 alone saves and reports (the weights are the same)
        return {"rank": parallel.rank(), "steps_done": state.step}
    print(
        f"[{label}] done: {state.step} steps, stop reason {stop['reason']}, "
        f"final checkpoint {ckpt_info['path']} ({ckpt_info['format']})",
        flush=True,
    )
    return summary


def _summary(run: TrainRun, outcome: _Outcome, ckpt_info: dict[str, Any] | None) -> dict[str, Any]:
    state, params, phases = outcome.state, run.params, run.phases
    curves = _curves(state.log_history)
    evals = [e["eval_loss"] for e in curves["eval"]]
    tp = outcome.throughput.summary()
    tp["train_runtime_s"] = outcome.train_s
    return {
        "kind": run.kind,
        **run.record,
        "steps_done": state.step,
        "max_steps": params["max_steps"],
        "stop": outcome.stop,
        "resumed_from_step": outcome.resumed_from_step,
        "final_train_loss": curves["train"][-1]["loss"] if curves["train"] else None,
        "final_eval_loss": evals[-1] if evals else None,
        "best_eval_loss": min(evals) if evals else None,
        "curves": curves,
        "throughput": tp,
        "tokens_seen": state.tokens_seen,
        "checkpoint": ckpt_info,
        "params": params,
        **run.summary_extra,
        "provenance": provenance.collect(
            config_slice=run.config_slice
            if run.config_slice is not None
            else {**run.record, "params": params},
            inputs=run.inputs,
            started=phases.started,
            extra={"training_segments": saving.segments(state)},
        ),
        "phases": phases.as_dict(),  # after provenance: its git call and fingerprints count
    }
