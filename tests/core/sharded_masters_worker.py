"""A worker for ablate.core.parallel.launch (tests/core/test_sharded_masters.py): the sharded
masters' optimizer in N processes (gloo) against the one-process MasterWeightsOptimizer on the
same gradients. Each process's gradient of a step is its own; the one process sees their mean
(the loop's loss of N processes is N times the mean, undone by the division by N). Rank 0
writes what it measured to ``out``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from transformers.optimization import Adafactor

from ablate.core import parallel
from ablate.core.training.optim import MasterWeightsOptimizer, decay_groups
from ablate.core.training.sharded_masters import ShardedMastersOptimizer

KW = {
    "adafactor": (Adafactor, dict(lr=1e-2, scale_parameter=False, relative_step=False)),
    "adamw": (torch.optim.AdamW, dict(lr=1e-2)),
}


def model(dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Embedding(11, 6),
        torch.nn.Linear(6, 7),
        torch.nn.LayerNorm(7),
        torch.nn.Linear(7, 3),
    )
    return m.to(dtype)


def grads(step: int, rank: int, m: torch.nn.Module) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * step + rank)
    return [torch.randn(p.shape, generator=g) for p in m.parameters()]


def run(opt, m, steps: int, world: int, ranks: list[int], clip: float | None) -> list[float]:
    """``steps`` steps of two micro-batches; the loss a process backpropagates is its
    ``ranks``' gradients times ``world`` / (all processes): the loop's ``total * world /
    n_items`` (one process: the mean; N: its own share times N)."""
    norms = []
    for s in range(steps):
        for micro in range(2):  # two micro-batches: the hooks accumulate
            total = [sum(t) for t in zip(*(grads(2 * s + micro, r, m) for r in ranks))]
            loss = sum((p * g.to(p.dtype)).sum() for p, g in zip(m.parameters(), total))
            (loss * world / parallel.world_size() / 2).backward()
        if clip is not None:
            norms.append(float(opt.clip_(clip)))
        opt.step()
    return norms


def compare(out: str, optim: str, dtype: str, clip: float | None) -> None:
    dt = getattr(torch, dtype)
    world, rank = parallel.world_size(), parallel.rank()
    cls, kw = KW[optim]
    one = model(dt)
    ref = MasterWeightsOptimizer(decay_groups(one, 0.1), cls, dict(kw))
    ref_norms = run(ref, one, 3, 1, list(range(world)), clip)
    many = model(dt)
    opt = ShardedMastersOptimizer(decay_groups(many, 0.1), cls, dict(kw))
    norms = run(opt, many, 3, world, [rank], clip)
    weights = max(
        float((a.float() - b.float()).abs().max())
        for a, b in zip(one.parameters(), many.parameters())
    )
    full = opt.state_dict()  # a collective; process 0 gets it whole
    result = {"weights": weights, "norms": norms, "ref_norms": ref_norms}
    if rank == 0:  # the one-process optimizer's state_dict, key for key
        ref_state = ref.state_dict()
        pairs = list(zip(full["master"], ref_state["master"], strict=True))
        result["masters"] = max(float((a.cpu() - b.cpu()).abs().max()) for a, b in pairs)
        ours, theirs = full["inner"]["state"], ref_state["inner"]["state"]
        result["state_keys"] = {i: sorted(s) for i, s in ours.items()} == {
            i: sorted(s) for i, s in theirs.items()
        }
        result["state"] = max(
            float(
                (torch.as_tensor(v).float() - torch.as_tensor(theirs[i][k]).float().cpu())
                .abs()
                .max()
            )
            for i, s in ours.items()
            for k, v in s.items()
        )
        result["groups"] = full["inner"]["param_groups"] == ref_state["inner"]["param_groups"]
    # the checkpoint resumes on N processes (a copy: a loaded state is the optimizer's own)
    state = [copy.deepcopy(full)] if rank == 0 else [None]
    torch.distributed.broadcast_object_list(state, src=0)
    again = model(dt)
    back = ShardedMastersOptimizer(decay_groups(again, 0.1), cls, dict(kw))
    back.load_state_dict(state[0])
    run(back, again, 1, world, [rank], clip)
    run(opt, many, 1, world, [rank], clip)
    pairs = zip(again.parameters(), many.parameters())
    result["resumed"] = max(float((a - b).abs().max()) for a, b in pairs)
    if rank == 0:  # and on one process: its weights become the masters' values
        single = model(dt)
        groups = decay_groups(single, 0.1)
        solo = MasterWeightsOptimizer(groups, cls, dict(kw))
        solo.load_state_dict(copy.deepcopy(full))
        pairs = zip([t for g in groups for t in g["params"]], full["master"], strict=True)
        result["loaded_one"] = max(float((a - b.to(dt)).abs().max()) for a, b in pairs)
        Path(out).write_text(json.dumps(result))
