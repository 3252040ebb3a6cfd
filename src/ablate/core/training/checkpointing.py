"""A run's checkpoints (``checkpoint-N``: what resumes it bit for bit) and its final weights.

``checkpoint-N`` of one process holds the weights (``model.safetensors``), the optimizer state
(``optimizer.pt``: the fp32 masters with it), the schedule (``scheduler.pt``), the RNG state
(``rng_state.pth``) and the loop's state (``loop_state.json``: step, tokens, log history, a
study evaluation's plain values; its tensors, e.g. a best state kept for restoring, in
``evaluation.pt``). A sharded run writes weights and optimizer state as
torch.distributed.checkpoint shards (:func:`ablate.core.training.sharding.save_checkpoint`), a
replicated one (DDP) process 0's copy; with N processes each writes its own RNG file. Every file
loads without unpickling code (``weights_only=True``, safetensors, JSON). The hash manifest and
the completion marker come last (:func:`ablate.core.checkpoint.mark_complete`); the oldest
complete checkpoints beyond ``save_total_limit`` are then removed.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from ablate.core import checkpoint, io, modeling, parallel
from ablate.core.phases import Phases
from ablate.core.training import sharding
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


def _rng_file() -> str:
    """Each process draws its own dropout masks: one RNG file per process when N > 1."""
    return f"rng_state_{parallel.rank()}.pth" if parallel.world_size() > 1 else "rng_state.pth"


def _rng_state() -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save(run) -> Path:
    """``checkpoint-<step>`` of ``run`` (a collective when sharded); returns its path."""
    step = run.state.step
    ckpt = Path(run.spec.checkpoints) / f"checkpoint-{step}"
    ckpt.mkdir(parents=True, exist_ok=True)
    if run.sharded:
        sharding.save_checkpoint(run.model, run.optimizer, ckpt)
        fmt = checkpoint.FORMAT_SHARDED
    else:
        if parallel.rank() == 0:  # replicas (DDP) are equal: one copy
            safetensors.torch.save_model(run.model, str(ckpt / WEIGHTS))
            torch.save(run.optimizer.state_dict(), ckpt / OPTIMIZER)
        fmt = FORMAT_WHOLE
    torch.save(_rng_state(), ckpt / _rng_file())
    if parallel.rank() == 0:
        torch.save(run.scheduler.state_dict(), ckpt / SCHEDULER)
        if run.spec.evaluation is not None:
            run.state.evaluation, tensors = run.spec.evaluation.state()
            torch.save(tensors, ckpt / EVALUATION)
        io.write_json(ckpt / LOOP_STATE, asdict(run.state))
    parallel.barrier()  # every process's files are in before the manifest and the marker
    if parallel.rank() == 0:
        checkpoint.mark_complete(ckpt, step, fmt)
        _rotate(Path(run.spec.checkpoints), run.params["save_total_limit"])
    parallel.barrier()
    return ckpt


def _rotate(directory: Path, limit: int) -> None:
    """Keep the newest ``limit`` complete checkpoints; remove older ones, complete or not."""
    complete = checkpoint.complete_checkpoints(directory)
    if not complete:
        return
    oldest_kept = checkpoint.step_of(complete[-limit:][0])
    for d in directory.glob("checkpoint-*"):
        n = checkpoint.step_of(d)
        if n is not None and n < oldest_kept:
            shutil.rmtree(d, ignore_errors=True)


def load_weights(run, ckpt: Path) -> None:
    """The weights of ``ckpt`` into the model (the fp32 masters follow where there are some)."""
    if run.sharded:
        sharding.load_model(run.model, ckpt)
        return
    safetensors.torch.load_model(run.model, str(ckpt / WEIGHTS), device=str(run.device))
    if run.master is not None:  # the fp32 masters are the values (the weights: their bf16 copy)
        run.optimizer.load_state_dict(torch.load(ckpt / OPTIMIZER, weights_only=True))


def load(run, ckpt: Path) -> None:
    """Everything of ``ckpt`` into ``run``: weights, optimizer, schedule, RNG, the loop's state
    (the same data order follows from the step)."""
    if run.sharded:
        sharding.load_model(run.model, ckpt)
        sharding.load_optimizer(run.model, run.optimizer, ckpt)
    else:
        safetensors.torch.load_model(run.model, str(ckpt / WEIGHTS), device=str(run.device))
        run.optimizer.load_state_dict(torch.load(ckpt / OPTIMIZER, weights_only=True))
    run.scheduler.load_state_dict(torch.load(ckpt / SCHEDULER, weights_only=True))
    rng = torch.load(ckpt / _rng_file(), weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    run.state = type(run.state)(**load_state(ckpt))  # the loop's State
    if run.spec.evaluation is not None:
        tensors = torch.load(ckpt / EVALUATION, map_location="cpu", weights_only=True)
        run.spec.evaluation.load(run.state.evaluation, tensors)


def load_state(ckpt: Path) -> dict[str, Any]:
    """The loop's state a checkpoint holds (step, tokens, log history)."""
    return json.loads((ckpt / LOOP_STATE).read_text())


def save_pretrained(model, out: Path, tokenizer, state_dict=None) -> str:
    """``save_pretrained`` in shards of :data:`SAVE_SHARD`, or, when it raises, the state_dict
    fallback (the seed hit a conversion error there); returns the format written."""
    try:
        model.save_pretrained(out, state_dict=state_dict, max_shard_size=SAVE_SHARD)
        if tokenizer is not None:
            tokenizer.save_pretrained(out)
        return checkpoint.FORMAT_SAVE_PRETRAINED
    except Exception as exc:  # any failure of the model's own serializer
        print(
            f"[save] save_pretrained failed ({type(exc).__name__}: {exc}); "
            f"writing the state_dict fallback to {out}",
            file=sys.stderr,
            flush=True,
        )
        checkpoint.save_state_dict_fallback(model, out, tokenizer=tokenizer)
        return checkpoint.FORMAT_FALLBACK


def save_final(
    run, out_dir: Path, *, tokenizer, dtype: torch.dtype, extra: dict, phases: Phases | None = None
) -> dict | None:
    """``out_dir/final`` through :func:`ablate.core.checkpoint.write_final`: the weights in
    ``dtype`` (a sharded model's gathered onto process 0, which alone writes; the others get
    None); a state_dict fallback is reloaded and compared before it is kept. ``phases`` records
    ``save_final`` and its parts (``.write``: the weights)."""
    phases = phases or Phases()
    model, state_dict = run.model, None
    with phases("save_final"):
        if run.sharded:  # a collective: every process joins, process 0 gets the weights
            state_dict = sharding.full_state_dict(model)
            if parallel.rank() != 0:
                return None
            state_dict = {k: v.to(dtype) for k, v in state_dict.items()}
        else:
            model.to(dtype)
            if run.master is not None:  # the fp32 masters are the weights' values
                run.master.write_model()

        def write(tmp: Path) -> str:
            with phases("save_final.write"):
                fmt = save_pretrained(model, tmp, tokenizer, state_dict)
            if fmt == checkpoint.FORMAT_FALLBACK:
                with phases("save_final.reload_compare"):
                    modeling.verify_loadable(model, tmp)
            return fmt

        name = dtype_name(dtype)
        info = checkpoint.write_final(out_dir, write, extra={"dtype": name, **extra})
    return {"path": info["path"], "format": info["format"], "dtype": name}
