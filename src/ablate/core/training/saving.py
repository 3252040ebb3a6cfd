"""What a training run saves and loads back: its checkpoints (``checkpoint-N``: what resumes it bit
for bit) and its final weights (the files' integrity:
:mod:`ablate.core.outputs.checkpoint_integrity`).

Every file loads without unpickling code (``weights_only=True``, safetensors, JSON), each read
and checked before anything of it goes into the trainer.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any, TypeVar

import safetensors.torch
import torch

from ablate.core.execution import parallel
from ablate.core.models import modeling
from ablate.core.outputs import checkpoint_integrity, io, provenance
from ablate.core.outputs.phases import Phases
from ablate.core.training import resume, sharding
from ablate.core.training.monitor import check_logged_stop
from ablate.core.training.params import dtype_name
from ablate.upstream import hf

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
_T = TypeVar("_T")
_S = TypeVar("_S")


def _rng_file(rank: int | None = None) -> str:
    """Each process draws its own dropout masks: one RNG file per process when N > 1."""
    if parallel.world_size() == 1:
        return "rng_state.pth"
    return f"rng_state_{parallel.rank() if rank is None else rank}.pth"


def _unsaved_rng(ckpt: Path) -> list[int]:
    """The processes of this run whose RNG state ``ckpt`` does not hold (saved by fewer)."""
    return [r for r in range(parallel.world_size()) if not (ckpt / _rng_file(r)).is_file()]


def rank_seed(seed: int, step: int, rank: int) -> int:
    """The RNG seed of process ``rank`` resuming at ``step`` from a checkpoint without its RNG
    state (the same resume draws the same)."""
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
    """``checkpoint-<step>`` of ``trainer`` (a collective when sharded); returns its path. One cut
    off by a full disk is never completed: the rerun resumes from the one before."""
    ckpt = Path(trainer.spec.checkpoints) / f"checkpoint-{trainer.state.step}"
    with checkpoint_integrity.naming_a_full_disk(f"saving {ckpt.name}", ckpt):
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
            if trainer.spec.recipe.evaluation is not None:
                trainer.state.evaluation, tensors = trainer.spec.recipe.evaluation.state()
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
    """A file of a checkpoint that matched its manifest is refused, does not parse or does not
    fit this run; raised before anything of it went into the trainer."""


class PartlyLoaded(UnreadableCheckpoint):
    """A checkpoint failed while going into the trainer: part of it may be in it."""


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def _torch_file(path: Path, unfit: Callable[[Any], str | None] | None = None, **kwargs) -> Any:
    """A pickled checkpoint file through torch's weights_only unpickler, nothing of it run
    (``unfit(obj)``: why it cannot be this run's, or None)."""
    try:
        obj = torch.load(path, weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        what = re.search(r"Unsupported (global: GLOBAL \S+|operand \S+)", str(exc))
        held = f" ({what.group(1)})" if what else ""
        raise UnreadableCheckpoint(
            f"{path} holds objects no checkpoint holds{held}: refused, nothing of it ran; the "
            "file was altered or is not this pipeline's"
        ) from None
    except Exception as exc:  # whatever the admitted globals raise on their arguments
        raise UnreadableCheckpoint(f"{path} does not load ({_first_line(exc)})") from None
    if unfit is not None and (why := unfit(obj)):
        raise UnreadableCheckpoint(f"{path} does not fit this run ({why})")
    return obj


def _shard_index(ckpt: Path) -> None:
    """A sharded checkpoint's ``.metadata`` read as its loads will read it (nothing loaded)."""
    try:
        sharding.read_metadata(ckpt)
    except pickle.UnpicklingError as exc:  # names the file and the global it refused
        raise UnreadableCheckpoint(str(exc).splitlines()[0]) from None
    except Exception as exc:  # whatever the admitted globals raise on their arguments
        path = sharding.metadata_file(ckpt)
        raise UnreadableCheckpoint(f"{path} does not load ({_first_line(exc)})") from None


def _state_dict(path: Path) -> dict:
    got = _torch_file(path)
    if not isinstance(got, dict):
        raise UnreadableCheckpoint(f"{path} holds a {type(got).__name__}, not a state dict")
    return got


def _schedule(path: Path, own: dict[str, Any]) -> dict:
    """The schedule's state of ``path``, checked to have the shape of this run's (``own``):
    ``load_state_dict`` takes any."""
    got = _state_dict(path)
    for key in sorted(set(own) | set(got)):
        mine, theirs = own.get(key), got.get(key)
        if key not in got or key not in own or type(mine) is not type(theirs):
            why = f"{type(theirs).__name__} in the file, {type(mine).__name__} in the schedule"
        elif isinstance(mine, list) and len(mine) != len(theirs):
            why = f"{len(theirs)} values in the file, {len(mine)} in the schedule"
        else:
            continue
        raise UnreadableCheckpoint(f"{path} does not fit this run's schedule ({key}: {why})")
    return got


def _rng(path: Path) -> dict:
    got = _state_dict(path)
    cpu = got.get("cpu")
    if not (isinstance(cpu, torch.Tensor) and cpu.dtype == torch.uint8):
        raise UnreadableCheckpoint(f"{path} holds no CPU generator state (a byte tensor)")
    return got


def _check_log_history(log_history: list, step: int) -> None:
    """Entries that replaying the stop rules reads."""
    for entry in log_history:
        if not isinstance(entry, dict) or type(entry.get("step")) is not int:
            raise TypeError(f"a log_history entry without an integer step: {str(entry)[:60]}")
        if not 0 <= entry["step"] <= step:
            raise ValueError(f"a log_history entry of step {entry['step']}, not in 0..{step}")
        if any(type(entry.get(k, 0.0)) not in (int, float) for k in ("loss", "eval_loss")):
            raise TypeError(f"a log_history entry whose loss is no number: {str(entry)[:60]}")
        check_logged_stop(entry)


def _check_state(state: Any, state_type: type, ckpt: Path, max_steps: int) -> None:
    """``loop_state.json``'s content checked against ``state_type`` and the checkpoint's step."""
    if not isinstance(state, dict) or not {"step", "log_history"} <= set(state):
        raise TypeError("no mapping with a step and a log_history")
    for f in fields(state_type):
        default = f.default if f.default is not MISSING else f.default_factory()
        if f.name in state and type(state[f.name]) is not type(default):
            got = type(state[f.name]).__name__
            raise TypeError(f"{f.name} is of type {got}, not {type(default).__name__}")
    step = state["step"]
    if not 0 <= step <= max_steps or step != checkpoint_integrity.step_of(ckpt):
        raise ValueError(f"step {step}, not this checkpoint's ({ckpt.name}) of 0..{max_steps}")
    if state.get("tokens_seen", 0) < 0:
        raise ValueError(f"tokens_seen {state['tokens_seen']} is negative")
    _check_log_history(state["log_history"], step)
    for seg in state.get("segments", []):
        if not isinstance(seg, dict) or type(seg.get("from_step")) is not int:
            raise TypeError(f"a segment without an integer from_step: {str(seg)[:60]}")
        if not 0 <= seg["from_step"] <= step:
            raise ValueError(f"a segment from step {seg['from_step']}, not in 0..{step}")
    if any(type(x) not in (int, float) for x in state.get("unlogged_losses", [])):
        raise TypeError("unlogged_losses is not a list of numbers")


def load_state(ckpt: Path, state_type: type[_S], max_steps: int) -> _S:
    """The loop's state ``ckpt`` holds as ``state_type``, checked before anything is loaded."""
    path = ckpt / LOOP_STATE
    try:
        state = io.load_json(path)
        _check_state(state, state_type, ckpt, max_steps)
        return state_type(**state)
    except Exception as exc:  # noqa: BLE001 (any content: JSON of another shape)
        raise UnreadableCheckpoint(f"{path} is unreadable ({_first_line(exc)})") from None


def _check_weights(model, path: Path) -> None:
    """The weights file's tensors fit ``model``, read from its header (no tensor loaded):
    ``load_state_dict`` would copy what fits, then raise."""
    own = model.state_dict()
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 (a header that does not parse)
        raise UnreadableCheckpoint(f"{path} does not load ({_first_line(exc)})") from None
    unfit = [f"{k}: not one of the model's tensors" for k in sorted(set(shapes) - set(own))]
    unfit += [f"{k}: not in the file" for k in modeling.unheld_tensors(own, shapes)]
    twice = [" and ".join(names) for names in modeling.held_twice(own, shapes)]
    unfit += [f"{k}: one tied tensor, in the file twice" for k in twice]
    unfit += [  # the model's order
        f"{k}: {shapes[k]} in the file, {list(t.shape)} in the model"
        for k, t in own.items()
        if k in shapes and shapes[k] != list(t.shape)
    ]
    if unfit:
        raise UnreadableCheckpoint(f"{path} does not fit this run's model ({unfit[0]})")


def _agreed(read: Callable[[], Any], ckpt: Path) -> Any:
    """``read()`` in every process; when it fails in any of them, all raise (the loads that
    follow are collectives)."""
    try:
        got, error = read(), None
    except UnreadableCheckpoint as exc:
        got, error = None, exc
        if parallel.world_size() > 1:
            checkpoint_integrity.say(f"process {parallel.rank()}: {exc}")
    if parallel.any_process(error is not None):
        raise error or UnreadableCheckpoint(f"another process refused a file of {ckpt}")
    return got


@contextlib.contextmanager
def _into_trainer(ckpt: Path) -> Iterator[None]:
    """Whatever fails while loading into the trainer is :class:`PartlyLoaded`."""
    try:
        yield
    except sharding.LOAD_ERRORS as exc:
        raise PartlyLoaded(f"{ckpt} does not load into this run ({_first_line(exc)})") from exc


def load_weights(trainer, ckpt: Path) -> None:
    """The weights of ``ckpt`` into the model (the fp32 masters follow where there are some)."""
    if trainer.sharded:
        _agreed(lambda: _shard_index(ckpt), ckpt)
        with _into_trainer(ckpt):
            sharding.load_model(trainer.model, ckpt)
        return

    def read() -> Any:
        _check_weights(trainer.model, ckpt / WEIGHTS)
        return None if trainer.master is None else _torch_file(ckpt / OPTIMIZER)

    masters = _agreed(read, ckpt)
    with _into_trainer(ckpt):
        safetensors.torch.load_model(trainer.model, str(ckpt / WEIGHTS), device=str(trainer.device))
        if masters is not None:  # the fp32 masters are the values (the weights: their bf16 copy)
            trainer.optimizer.load_state_dict(masters)


def load_stopped(trainer, ckpt: Path, state) -> None:
    """A checkpoint of a training a stop rule had ended (``state``: its loop state): what the
    outputs are written from, nothing that would train on."""
    evaluation = trainer.spec.recipe.evaluation
    if evaluation is None:
        load_weights(trainer, ckpt)
    else:
        tensors = _agreed(
            lambda: _torch_file(ckpt / EVALUATION, evaluation.unfit, map_location="cpu"), ckpt
        )
        load_weights(trainer, ckpt)
        with _into_trainer(ckpt):
            evaluation.load(state.evaluation, tensors)
    trainer.state = state


def _read(trainer, ckpt: Path) -> dict[str, Any]:
    """Every file of ``ckpt`` this process loads, read and checked."""
    if trainer.sharded:
        _shard_index(ckpt)
    else:
        _check_weights(trainer.model, ckpt / WEIGHTS)
    return {
        "optimizer": None if trainer.sharded else _state_dict(ckpt / OPTIMIZER),
        "scheduler": _schedule(ckpt / SCHEDULER, trainer.scheduler.state_dict()),
        "rng": None if parallel.rank() in _unsaved_rng(ckpt) else _rng(ckpt / _rng_file()),
        "state": load_state(ckpt, type(trainer.state), trainer.params.max_steps),
        "evaluation": None
        if (ev := trainer.spec.recipe.evaluation) is None
        else _torch_file(ckpt / EVALUATION, ev.unfit, map_location="cpu"),
    }


def load(trainer, ckpt: Path) -> None:
    """Everything of ``ckpt`` into ``trainer`` (the same data order follows from the step)."""
    files = _agreed(lambda: _read(trainer, ckpt), ckpt)
    with _into_trainer(ckpt):
        if trainer.sharded:
            sharding.load_model(trainer.model, ckpt)
            sharding.load_optimizer(trainer.model, trainer.optimizer, ckpt)
        else:
            safetensors.torch.load_model(
                trainer.model, str(ckpt / WEIGHTS), device=str(trainer.device)
            )
            trainer.optimizer.load_state_dict(files["optimizer"])
        trainer.scheduler.load_state_dict(files["scheduler"])
        trainer.state = files["state"]  # the loop's State
        restore_unlogged_losses(trainer, trainer.state.unlogged_losses)
        rng = files["rng"]
        # None: saved by fewer processes than this run has: seeded (begin_segment records)
        if rng is None:
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
        if trainer.spec.recipe.evaluation is not None:
            trainer.spec.recipe.evaluation.load(trainer.state.evaluation, files["evaluation"])


def unlogged_losses(trainer) -> list[float]:
    """The step losses since the last log, summed over the processes (a collective)."""
    if not trainer.losses:
        return []
    return parallel.sum_tensor(torch.stack(trainer.losses).float()).tolist()


def restore_unlogged_losses(trainer, losses: list[float]) -> None:
    """``losses`` (:func:`unlogged_losses` of a checkpoint) as the trainer's steps since the last
    log, held whole by process 0, so the next log's mean is right on any process count."""
    whole = 1.0 if parallel.rank() == 0 else 0.0
    trainer.losses = [torch.tensor(x * whole, device=trainer.device) for x in losses]


def begin_segment(trainer, resumed_from: Path | None) -> None:
    """Record a segment starting at ``trainer``'s step: its process count, which RNG states were
    restored or seeded, its hardware; each checkpoint carries every segment of its weights."""
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
    """The segments of ``state`` that trained steps, each with its ``"steps": [first, last]``."""
    out = []
    for i, seg in enumerate(state.segments):
        end = state.segments[i + 1]["from_step"] if i + 1 < len(state.segments) else state.step
        if end > seg["from_step"]:
            first = seg["from_step"] + 1
            out.append(
                {"steps": [first, end], **{k: v for k, v in seg.items() if k != "from_step"}}
            )
    return out


def _why(ckpt: Path, error: BaseException | None) -> str:
    if isinstance(error, UnreadableCheckpoint):
        return str(error).splitlines()[0]
    if error is None:
        return f"another process could not load {ckpt}"
    return f"{ckpt} does not load into this run ({_first_line(error)})"


def resume_from(
    ckpt_dir: Path,
    run_key: dict[str, Any],
    inputs: dict[str, Any] | None,
    load: Callable[[Path], _T],
) -> tuple[Path | None, _T | None]:
    """The newest checkpoint of the same run loaded by ``load``, and what ``load`` returned;
    (None, None): a fresh start. Whatever ``load`` raises in any process, the checkpoint is set
    aside and the one before it tried; when one may have gone in part and no older one loaded
    over it, the run stops (:class:`PartlyLoaded`)."""
    touched = False
    while (ckpt := resume.resume_point(ckpt_dir, run_key, inputs)) is not None:
        try:
            got, error = load(ckpt), None
        except sharding.LOAD_ERRORS as exc:  # the one rule: any exception of a load
            got, error = None, exc
        if not parallel.any_process(error is not None):
            return ckpt, got
        clean = isinstance(error, UnreadableCheckpoint) and not isinstance(error, PartlyLoaded)
        touched = touched or not clean
        if parallel.rank() == 0:
            aside = checkpoint_integrity.set_aside(ckpt)
            checkpoint_integrity.say(f"{ckpt.name} set aside as {aside.name}: {_why(ckpt, error)}")
    if parallel.any_process(touched):
        raise PartlyLoaded(
            f"{ckpt_dir}: a checkpoint set aside above had gone into this run in part and no "
            "older one loads over it; rerun the job, which starts fresh"
        )
    return None, None


def end_of_run(
    watch, ckpt_dir: Path, *, keep: bool, save_last: Callable[[], Path | None] | None = None
) -> bool:
    """A job's last act (a collective): its checkpoints are removed, or, when a signal came since
    the training ended, kept with ``save_last()``'s, from which a rerun writes the outputs again
    (an interrupted Snakemake may delete them). Returns whether a signal came."""
    if not watch.requested():
        if parallel.rank() == 0:
            checkpoint_integrity.remove_at_end(ckpt_dir, keep=keep)
        return False
    if save_last is not None and (saved := save_last()) is not None and parallel.rank() == 0:
        checkpoint_integrity.keep_for_outputs(saved)
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
        hf.save_tokenizer(tokenizer, out)
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
    """``out_dir/final``: the weights in ``dtype``, written by process 0 (the others get None); a
    state_dict fallback is reloaded and compared before it is kept."""
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
