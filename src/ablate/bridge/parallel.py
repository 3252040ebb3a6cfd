"""Data-parallel translator training: torch.distributed as torchrun sets it up, nothing home-made.

``torchrun --nproc-per-node N -m ablate.bridge.train <kwargs.json>`` starts N processes with
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` in their environment; :func:`init` joins them (NCCL on
GPUs, one GPU per process; gloo on CPU). Without those variables every helper here is the
single-process identity, so a one-process run is exactly the plain loop.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist

#: How long a process waits for the others at a collective: rank 0 may evaluate for minutes.
TIMEOUT = datetime.timedelta(hours=2)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def launched() -> bool:
    """Started by torchrun (or any launcher that sets the torch.distributed environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> None:
    """Join the process group torchrun described; bind this process to its GPU."""
    if not launched() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl", timeout=TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)


def close() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(translator: torch.nn.Module) -> torch.nn.Module:
    """DDP around the translator when data-parallel (gradients averaged over processes)."""
    if world_size() == 1:
        return translator
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    return DistributedDataParallel(translator, device_ids=ids)


def _sum(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().clone()
    dist.all_reduce(t)
    return t


def share_of_mean(local_sum: torch.Tensor, local_count: torch.Tensor) -> torch.Tensor:
    """This process's share of a mean over the global batch: ``W * local_sum / global_count``.

    DDP averages gradients over the W processes, so the average of these shares (and of their
    gradients) is ``global_sum / global_count``, whatever each process's count."""
    count = _sum(local_count.float()).clamp_min(1)
    return local_sum * world_size() / count


def mean_value(local: torch.Tensor) -> float:
    """The mean over processes of a per-process value (the global batch's, for a share)."""
    if world_size() == 1:
        return float(local.detach())
    return float(_sum(local.float()) / world_size())


def total(n: int) -> int:
    """A per-process count summed over processes (tokens of the global batch)."""
    if world_size() == 1:
        return n
    dev = "cuda" if torch.cuda.is_available() else "cpu"  # NCCL reduces GPU tensors only
    return int(_sum(torch.tensor(n, dtype=torch.long, device=dev)))


def shard(items: list[Any]) -> list[Any]:
    """This process's part of ``items`` (every W-th from its rank); the whole list on one."""
    return items[rank() :: world_size()]


def gather(rows: list[Any]) -> list[Any]:
    """The parts :func:`shard` split, back in the original order on every process."""
    w = world_size()
    if w == 1:
        return rows
    parts: list[list[Any]] = [[] for _ in range(w)]
    dist.all_gather_object(parts, rows)
    out: list[Any] = []
    for i in range(max(len(p) for p in parts)):
        out.extend(p[i] for p in parts if i < len(p))
    return out
