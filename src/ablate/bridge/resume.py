"""Resumable translator training: a checkpoint at every evaluation that training goes on from,
and a rerun (a lost Vast instance's retry, a killed local job) resumes from the newest complete one.

The checkpoints are the core's complete-or-ignored training checkpoints (:mod:`ablate.core.checkpoint`:
``<out>/checkpoints/checkpoint-N`` beside the run's outputs, its completion marker written last, a
run key that names the run), so the Vast executor copies them off the instance as the mask
finetune's and ships the newest copy to a retry. One holds what the loop needs to go on exactly
as if never stopped: the translator, AdamW and the schedule, each process's RNG states (dropout),
and the loop's own state (step, tokens, losses, the evaluations' curve and best state). The batch
order is replayed from the seed. The interval is ``eval_every`` steps: the best state is taken at
the evaluations, so a checkpoint there holds everything.

:func:`checkpointing` (around :func:`ablate.bridge.train.fit`, by ``train_entry``) says where they
go; without it the loop saves nothing (a direct call of ``fit``, the GPU benchmark).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

from ablate.core import checkpoint, parallel, resume

# Both files hold tensors and plain values only: they load with torch's weights_only unpickler,
# which runs no code from a file that came from another host (a Vast copy).
STATE_FILE = "state.pt"  # translator, optimizer, schedule, the loop's state (process 0)
RNG_FILE = "rng-{rank}.pt"  # each process's RNG states

#: (checkpoints folder, run key, inputs) of the run ``fit`` trains now; None: no checkpoints
_WHERE: ContextVar[tuple[Path, dict[str, Any], dict[str, Any]] | None] = ContextVar(
    "bridge_ckpts", default=None
)


@contextlib.contextmanager
def checkpointing(
    ckpt_dir: str | Path, run_key: dict[str, Any], inputs: dict[str, str | os.PathLike]
) -> Iterator[None]:
    """Within it, the training loop saves into and resumes from ``ckpt_dir`` (checkpoints of
    another ``run_key``, or trained on ``inputs`` of other content, are dropped:
    :func:`ablate.core.resume.resume_point`); the folder goes once the block ended without an
    error."""
    token = _WHERE.set((Path(ckpt_dir), run_key, inputs))
    try:
        yield
    finally:
        _WHERE.reset(token)
    if parallel.rank() == 0:  # the run's outputs are what counts now
        shutil.rmtree(ckpt_dir, ignore_errors=True)


def _rng() -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore(translator, opt, sched) -> tuple[dict[str, Any], Path] | None:
    """Load the newest complete checkpoint of this run into the translator, optimizer and
    schedule (and this process's RNG); its loop state and path, or None (start at step 0).
    Process 0 clears stale or cut-off checkpoints before the others look."""
    where = _WHERE.get()
    if where is None:
        return None
    newest = resume.resume_point(*where)
    if newest is None:
        return None
    state = torch.load(newest / STATE_FILE, map_location="cpu", weights_only=True)
    translator.load_state_dict(state["translator"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["schedule"])
    rng = torch.load(newest / RNG_FILE.format(rank=parallel.rank()), weights_only=True)
    _set_rng(rng)
    return state["loop"], newest


def save(step: int, translator, opt, sched, loop: dict[str, Any]) -> None:
    """Checkpoint ``step``: every process its RNG states, then process 0 the rest, the marker
    last, and the older checkpoints go (the newest complete one stays until the next is)."""
    where = _WHERE.get()
    if where is None:
        return
    ckpt_dir = where[0]
    out = ckpt_dir / f"checkpoint-{step}"
    out.mkdir(parents=True, exist_ok=True)
    torch.save(_rng(), out / RNG_FILE.format(rank=parallel.rank()))
    parallel.barrier()
    if parallel.rank() == 0:
        state = {
            "translator": translator.state_dict(),
            "optimizer": opt.state_dict(),
            "schedule": sched.state_dict(),
            "loop": loop,
        }
        torch.save(state, out / STATE_FILE)
        checkpoint.mark_complete(out, step, "torch")
        for old in checkpoint.complete_checkpoints(ckpt_dir)[:-1]:
            shutil.rmtree(old, ignore_errors=True)
    parallel.barrier()
