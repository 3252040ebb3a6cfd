"""Data-parallel bridge jobs: a loss term's count over the processes, logged values' mean over
them, the data split (training, evaluation, frozen-state extraction).

Without torchrun every helper here is the single-process identity, so a one-process run is exactly
the plain loop.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ablate.core.execution.parallel import rank, sum_tensor, world_size


def global_count(local_count: torch.Tensor) -> torch.Tensor:
    """A loss term's units summed over the processes (at least 1), for ``share_of_mean``."""
    return sum_tensor(local_count.detach().float()).clamp_min(1)


def mean_values(local: dict[str, torch.Tensor]) -> dict[str, float]:
    """The mean over processes of each value, in one reduction and one host read."""
    if not local:
        return {}
    values = torch.stack([v.detach().float() for v in local.values()])
    if world_size() > 1:
        values = sum_tensor(values) / world_size()
    return dict(zip(local, values.tolist(), strict=True))


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
    return _interleave(parts)


def collect(rows: list[Any]) -> list[Any]:
    """:func:`gather` to process 0 alone (an empty list on the others): large rows only it writes."""
    w = world_size()
    if w == 1:
        return rows
    parts: list[list[Any]] | None = [[] for _ in range(w)] if rank() == 0 else None
    dist.gather_object(rows, parts, dst=0)
    return _interleave(parts) if parts is not None else []


def _interleave(parts: list[list[Any]]) -> list[Any]:
    """Process r's i-th row was item i * W + r (:func:`shard`)."""
    out: list[Any] = []
    for i in range(max(len(p) for p in parts)):
        out.extend(p[i] for p in parts if i < len(p))
    return out
