"""What a training run saves and loads back: its checkpoints (``checkpoint-N``: what resumes it bit
for bit) and its final weights (the files' integrity:
:mod:`ablate.core.outputs.checkpoint_integrity`).

``checkpoint-N`` of one process holds the weights (``model.safetensors``), the optimizer state
(``optimizer.pt``: the fp32 masters with it), the schedule (``scheduler.pt``), the RNG state
(``rng_state.pth``) and the loop's state (``loop_state.json``: step, tokens, log history, a
study evaluation's plain values; its tensors, e.g. a best state kept for restoring, in
``evaluation.pt``). A sharded run writes weights and optimizer state as
torch.distributed.checkpoint shards (:func:`ablate.core.training.sharding.save_checkpoint`), one
of sharded masters or replicated (DDP) process 0's copy in the one-process format (sharded
masters gathered there); with N processes each writes its own RNG file. Every file
loads without unpickling code (``weights_only=True``, safetensors, JSON). The hash manifest and
the completion marker come last (:func:`ablate.core.outputs.checkpoint_integrity.mark_complete`);
the oldest complete checkpoints beyond ``save_total_limit`` are then removed.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import safetensors.torch
import torch

from ablate.core.execution import parallel
from ablate.core.models import modeling
from ablate.core.outputs import checkpoint_integrity, io, provenance
from ablate.core.outputs.phases import Phases
from ablate.core.training import resume, sharding
from ablate.core.training.params import dtype_name

WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
LOOP_STATE = "loop_state.json"
EVALUATION = "evaluation.pt"
#: a whole-weights checkpoint of one process
FORMAT_WHOLE = "whole"
#: max_shard_size of the final weights: the manifest and the loaders' checks hash the shards in
#: parallel, not 6.9 GB in one sha256 stream at 3.4 B
SAVE_SHARD = "2GB"


def _rng_file(rank: int | None = None) -> str:
    """Each process draws its own dropout masks: one RNG file per process when N > 1 (``rank``:
    another process's file; default this one's)."""
    if parallel.world_size() == 1:
        return "rng_state.pth"
    return f"rng_state_{parallel.rank() if rank is None else rank}.pth"


def _unsaved_rng(ckpt: Path) -> list[int]:
    """The processes of this run whose RNG state ``ckpt`` does not hold: it was saved by fewer
    processes (a sharded run resumed with more of them)."""
    return [r for r in range(parallel.world_size()) if not (ckpt / _rng_file(r)).is_file()]


def rank_seed(seed: int, step: int, rank: int) -> int:
    """The RNG seed of process ``rank`` resuming at ``step`` from a checkpoint without its RNG
    state: derived from the run's seed, the step and the rank, so the same resume draws the
    same, and no two processes alike."""
    digest = hashlib.sha256(f"{seed}/{step}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _rng_state() -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a Python file: a full disk then raises ``OSError(ENOSPC)``, where
    torch's own file writer reports only "unexpected pos"."""
    with open(path, "wb") as f:
        torch.save(obj, f)


def save(trainer) -> Path:
    """``checkpoint-<step>`` of ``trainer`` (a collective when sharded); returns its path. A full
    disk is named in one line (:func:`ablate.core.outputs.checkpoint_integrity.naming_a_full_disk`);
    the checkpoint, never completed, is ignored by the rerun, which resumes from the one before."""
    ckpt = Path(trainer.spec.checkpoints) / f"checkpoint-{trainer.state.step}"
    with checkpoint_integrity.naming_a_full_disk(f"saving {ckpt.name}", ckpt):
        return _save(trainer, ckpt)


def _save(trainer, ckpt: Path) -> Path:
    step = trainer.state.step
    ckpt.mkdir(parents=True, exist_ok=True)
    if trainer.sharded:
        sharding.save_checkpoint(trainer.model, trainer.optimizer, ckpt)
        fmt = checkpoint_integrity.FORMAT_SHARDED
    else:
        # every process joins: sharded masters gather theirs onto process 0 (a collective)
        optimizer = trainer.optimizer.state_dict()
        if parallel.rank() == 0:  # replicas are equal: one copy
            safetensors.torch.save_model(trainer.model, str(ckpt / WEIGHTS))
            _torch_save(optimizer, ckpt / OPTIMIZER)
        fmt = FORMAT_WHOLE
    _torch_save(_rng_state(), ckpt / _rng_file())
    trainer.state.unlogged_losses = unlogged_losses(trainer)  # a collective: every process
    if parallel.rank() == 0:
        _torch_save(trainer.scheduler.state_dict(), ckpt / SCHEDULER)
        if trainer.spec.evaluation is not None:
            trainer.state.evaluation, tensors = trainer.spec.evaluation.state()
            _torch_save(tensors, ckpt / EVALUATION)
        io.write_json(ckpt / LOOP_STATE, asdict(trainer.state))
    parallel.barrier()  # every process's files are in before the manifest and the marker
    if parallel.rank() == 0:
        checkpoint_integrity.mark_complete(ckpt, step, fmt)
        _rotate(Path(trainer.spec.checkpoints), trainer.params.save_total_limit)
    parallel.barrier()
    return ckpt


def _rotate(directory: Path, limit: int) -> None:
    """Keep the newest ``limit`` complete checkpoints; remove older ones, complete or not."""
    complete = checkpoint_integrity.complete_checkpoints(directory)
    if not complete:
        return
    oldest_kept = checkpoint_integrity.step_of(complete[-limit:][0])
    for d in directory.glob("checkpoint-*"):
        n = checkpoint_integrity.step_of(d)
        if n is not None and n < oldest_kept:
            shutil.rmtree(d, ignore_errors=True)


class UnreadableCheckpoint(checkpoint_integrity.CheckpointError):
    """A file of a checkpoint that matched its manifest does not load: the restricted loaders
    refused it (it names code or objects no checkpoint holds) or it does not parse. Its files
    were altered and the manifest written again; the checkpoint counts as corrupt
    (:func:`resume_from`)."""


def _torch_file(path: Path, **kwargs) -> Any:
    """A pickled checkpoint file through torch's weights_only unpickler, nothing of it run. A
    refusal names the file and what it held, never torch's advice to load it unrestricted."""
    try:
        return torch.load(path, weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        what = re.search(r"Unsupported (global: GLOBAL \S+|operand \S+)", str(exc))
        held = f" ({what.group(1)})" if what else ""
        raise UnreadableCheckpoint(
            f"{path} holds objects no checkpoint holds{held}: refused, nothing of it ran; the "
            "file was altered or is not this pipeline's"
        ) from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise UnreadableCheckpoint(
            f"{path} does not load ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None


def _shard_index(ckpt: Path) -> None:
    """A sharded checkpoint's ``.metadata`` read as its loads will read it (nothing loaded)."""
    try:
        sharding.read_metadata(ckpt)
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as exc:
        raise UnreadableCheckpoint(str(exc).splitlines()[0]) from None


def load_state(ckpt: Path) -> dict[str, Any]:
    """The loop's state a checkpoint holds (step, tokens, log history)."""
    path = ckpt / LOOP_STATE
    try:
        state = json.loads(path.read_text())
        if not (isinstance(state["step"], int) and isinstance(state["log_history"], list)):
            raise TypeError("step or log_history of another type")
        losses = state.get("unlogged_losses", [])
        if not isinstance(losses, list) or not all(isinstance(x, int | float) for x in losses):
            raise TypeError("unlogged_losses is not a list of numbers")
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableCheckpoint(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None
    return state


def _agreed(read: Callable[[], Any], ckpt: Path) -> Any:
    """``read()`` in every process; when it fails in any of them, all raise (the loads that
    follow are collectives), before anything of the checkpoint went into the trainer."""
    try:
        got, error = read(), None
    except UnreadableCheckpoint as exc:
        got, error = None, exc
        if parallel.world_size() > 1:
            checkpoint_integrity.say(f"process {parallel.rank()}: {exc}")
    if parallel.any_process(error is not None):
        raise error or UnreadableCheckpoint(f"another process refused a file of {ckpt}")
    return got


def load_weights(trainer, ckpt: Path) -> None:
    """The weights of ``ckpt`` into the model (the fp32 masters follow where there are some)."""
    if trainer.sharded:
        _agreed(lambda: _shard_index(ckpt), ckpt)
        sharding.load_model(trainer.model, ckpt)
        return
    masters = _agreed(
        lambda: None if trainer.master is None else _torch_file(ckpt / OPTIMIZER), ckpt
    )
    safetensors.torch.load_model(trainer.model, str(ckpt / WEIGHTS), device=str(trainer.device))
    if masters is not None:  # the fp32 masters are the values (the weights: their bf16 copy)
        trainer.optimizer.load_state_dict(masters)


def _read(trainer, ckpt: Path) -> dict[str, Any]:
    """Every file of ``ckpt`` this process loads besides the weights, parsed and unpickled (a
    sharded run's shard index too), so that a refused one changes nothing of the trainer."""
    if trainer.sharded:
        _shard_index(ckpt)
    return {
        "optimizer": None if trainer.sharded else _torch_file(ckpt / OPTIMIZER),
        "scheduler": _torch_file(ckpt / SCHEDULER),
        "rng": None if parallel.rank() in _unsaved_rng(ckpt) else _torch_file(ckpt / _rng_file()),
        "state": load_state(ckpt),
        "evaluation": None
        if trainer.spec.evaluation is None
        else _torch_file(ckpt / EVALUATION, map_location="cpu"),
    }


def load(trainer, ckpt: Path) -> None:
    """Everything of ``ckpt`` into ``trainer``: weights, optimizer, schedule, RNG, the loop's state
    (the same data order follows from the step). :class:`UnreadableCheckpoint` before any of it
    when a file is refused or does not parse."""
    files = _agreed(lambda: _read(trainer, ckpt), ckpt)
    if trainer.sharded:
        sharding.load_model(trainer.model, ckpt)
        sharding.load_optimizer(trainer.model, trainer.optimizer, ckpt)
    else:
        safetensors.torch.load_model(trainer.model, str(ckpt / WEIGHTS), device=str(trainer.device))
        trainer.optimizer.load_state_dict(files["optimizer"])
    trainer.scheduler.load_state_dict(files["scheduler"])
    trainer.state = type(trainer.state)(**files["state"])  # the loop's State
    restore_unlogged_losses(trainer, trainer.state.unlogged_losses)
    rng = files["rng"]
    if rng is None:  # saved by fewer processes than this run has: seeded (begin_segment records)
        torch.manual_seed(rank_seed(trainer.params.seed, trainer.state.step, parallel.rank()))
    else:
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
    unsaved = _unsaved_rng(ckpt)
    if unsaved and parallel.rank() == 0:
        checkpoint_integrity.say(
            f"{ckpt.name} holds the RNG states of fewer processes than this run's "
            f"{parallel.world_size()}: process(es) {', '.join(map(str, unsaved))} seed theirs "
            "from the run's seed, the step and their rank (rank_seed)"
        )
    if trainer.spec.evaluation is not None:
        trainer.spec.evaluation.load(trainer.state.evaluation, files["evaluation"])


def unlogged_losses(trainer) -> list[float]:
    """The step losses since the last log, summed over the processes (a collective)."""
    if not trainer.losses:
        return []
    return parallel.sum_tensor(torch.stack(trainer.losses).float()).tolist()


def restore_unlogged_losses(trainer, losses: list[float]) -> None:
    """``losses`` (:func:`unlogged_losses` of a checkpoint) as the trainer's steps since the last log:
    process 0 holds each whole, the others nothing, so :func:`~.loop.log_train`'s sum over
    processes of each one's mean is the mean over every step of the window, on any process
    count."""
    whole = 1.0 if parallel.rank() == 0 else 0.0
    trainer.losses = [torch.tensor(x * whole, device=trainer.device) for x in losses]


def begin_segment(trainer, resumed_from: Path | None) -> None:
    """A segment of the training starts at ``trainer``'s step (a start, or a resume from
    ``resumed_from``): its process count, which processes' RNG states came from the checkpoint
    and which were seeded (a fresh start's, or those a checkpoint of fewer processes lacks:
    :func:`rank_seed`), and its hardware, numerics environment included, go into the loop's
    state, so each checkpoint carries every segment its weights were trained in
    (:func:`segments`)."""
    ranks = range(parallel.world_size())
    seeded = list(ranks) if resumed_from is None else _unsaved_rng(resumed_from)
    trainer.state.segments.append(
        {
            "from_step": trainer.state.step,
            "world_size": parallel.world_size(),
            "rng": {"restored": [r for r in ranks if r not in seeded], "seeded": seeded},
            "hardware": provenance.hardware(),
        }
    )


def segments(state) -> list[dict[str, Any]]:
    """The segments of ``state`` (the loop's state) that trained steps, each with the steps it
    trained, ``"steps": [first, last]``: the record of a run resumed on other hardware or
    under another numerics environment names each, not the last one's alone."""
    out = []
    for i, seg in enumerate(state.segments):
        end = state.segments[i + 1]["from_step"] if i + 1 < len(state.segments) else state.step
        if end > seg["from_step"]:
            first = seg["from_step"] + 1
            out.append(
                {"steps": [first, end], **{k: v for k, v in seg.items() if k != "from_step"}}
            )
    return out


T = TypeVar("T")


def resume_from(
    ckpt_dir: Path,
    run_key: dict[str, Any],
    inputs: dict[str, Any] | None,
    load: Callable[[Path], T],
) -> tuple[Path | None, T | None]:
    """The newest checkpoint of the same run (:func:`ablate.core.training.resume.resume_point`)
    loaded by ``load``, and what ``load`` returned; (None, None): none, a fresh start. One whose
    file ``load`` refuses (:class:`UnreadableCheckpoint`) is set aside in one line like one that
    fails its manifest, and the one before it is tried."""
    while (ckpt := resume.resume_point(ckpt_dir, run_key, inputs)) is not None:
        try:
            return ckpt, load(ckpt)
        except UnreadableCheckpoint as exc:
            if parallel.rank() == 0:
                aside = checkpoint_integrity.set_aside(ckpt)
                checkpoint_integrity.say(f"{ckpt.name} set aside as {aside.name}: {exc}")
    return None, None


def end_of_run(
    watch, ckpt_dir: Path, *, keep: bool, save_last: Callable[[], Any] | None = None
) -> bool:
    """A job's last act, once its outputs are complete (a collective): its checkpoints are
    removed (unless ``keep``), or, when a signal came since the training ended (``watch``, an
    :class:`~ablate.core.execution.interrupts.InterruptWatch` holding it, in any process), kept,
    with ``save_last()`` first (a checkpoint of the finished training), so a rerun writes the
    outputs again from it: an interrupted Snakemake can mark the job incomplete and delete them.
    Returns whether a signal came."""
    if not watch.requested():
        if not keep and parallel.rank() == 0:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        return False
    if save_last is not None:
        save_last()
    if parallel.rank() == 0:
        newest = checkpoint_integrity.newest_complete(ckpt_dir)
        kept = f"{ckpt_dir} kept" + (f" ({newest.name})" if newest else "")
        print(
            f"[interrupt] {watch.signal.name if watch.signal else 'a signal'} came while the "
            f"outputs were written: they are complete; {kept}, from which a rerun writes them "
            "again",
            flush=True,
        )
    return True


def save_pretrained(model, out: Path, tokenizer, state_dict=None) -> str:
    """``save_pretrained`` in shards of :data:`SAVE_SHARD`, or, when it raises, the state_dict
    fallback (the seed hit a conversion error there); returns the format written."""
    try:
        model.save_pretrained(out, state_dict=state_dict, max_shard_size=SAVE_SHARD)
        if tokenizer is not None:
            tokenizer.save_pretrained(out)
        return checkpoint_integrity.FORMAT_SAVE_PRETRAINED
    except Exception as exc:  # any failure of the model's own serializer
        if checkpoint_integrity.out_of_space(exc):
            raise  # the fallback would fill the same disk
        print(
            f"[save] save_pretrained failed ({type(exc).__name__}: {exc}); "
            f"writing the state_dict fallback to {out}",
            file=sys.stderr,
            flush=True,
        )
        checkpoint_integrity.save_state_dict_fallback(model, out, tokenizer=tokenizer)
        return checkpoint_integrity.FORMAT_FALLBACK


def save_final(
    trainer,
    out_dir: Path,
    *,
    tokenizer,
    dtype: torch.dtype,
    extra: dict,
    phases: Phases | None = None,
) -> dict | None:
    """``out_dir/final`` through :func:`ablate.core.outputs.checkpoint_integrity.write_final`: the
    weights in ``dtype`` (a sharded model's gathered onto process 0, which alone writes; the others
    get None); a state_dict fallback is reloaded and compared before it is kept. ``phases`` records
    ``save_final`` and its parts (``.write``: the weights)."""
    phases = phases or Phases()
    model, state_dict = trainer.model, None
    with phases("save_final"):
        if trainer.sharded:  # a collective: every process joins, process 0 gets the weights
            state_dict = sharding.full_state_dict(model)
            if parallel.rank() != 0:
                return None
            state_dict = {k: v.to(dtype) for k, v in state_dict.items()}
        else:
            model.to(dtype)
            if trainer.master is not None:  # the fp32 masters are the weights' values
                trainer.master.write_model()  # sharded masters: a collective
            if parallel.rank() != 0:  # replicas are equal: process 0 writes
                return None

        def write(tmp: Path) -> str:
            with phases("save_final.write"):
                fmt = save_pretrained(model, tmp, tokenizer, state_dict)
            if fmt == checkpoint_integrity.FORMAT_FALLBACK:
                with phases("save_final.reload_compare"):
                    modeling.verify_loadable(model, tmp)
            return fmt

        name = dtype_name(dtype)
        with checkpoint_integrity.naming_a_full_disk("saving the final weights", out_dir / "final"):
            info = checkpoint_integrity.write_final(out_dir, write, extra={"dtype": name, **extra})
    return {"path": info["path"], "format": info["format"], "dtype": name}
