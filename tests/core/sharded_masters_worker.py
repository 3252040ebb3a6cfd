"""A worker for ablate.core.execution.parallel.launch (tests/core/training/test_sharded_masters.py):
the sharded masters' optimizer in N processes (gloo) against the one-process MasterWeightsOptimizer
on the same gradients. Each process's gradient of a step is its own; the one process sees their mean
(the loop's loss of N processes is N times the mean, undone by the division by N). Rank 0
writes what it measured to ``out``; :func:`compare_each` compares several cases in one launch."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path

import torch
from transformers.optimization import Adafactor

from ablate.core.execution import parallel
from ablate.core.training.optim import MasterWeightsOptimizer, decay_groups
from ablate.core.training.sharded_masters import ShardedMastersOptimizer

KW = {
    "adafactor": (Adafactor, dict(lr=1e-2, scale_parameter=False, relative_step=False)),
    "adamw": (torch.optim.AdamW, dict(lr=1e-2)),
}


#: the deeper model's hidden layers: its weights make several buckets (one bucket holds the
#: shallow model's)
DEEP = 6


def model(dtype: torch.dtype, hidden: int = 0) -> torch.nn.Module:
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Embedding(11, 6),
        *(torch.nn.Linear(6, 6) for _ in range(hidden)),
        torch.nn.Linear(6, 7),
        torch.nn.LayerNorm(7),
        torch.nn.Linear(7, 3),
    )
    return m.to(dtype)


def grads(step: int, rank: int, m: torch.nn.Module) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * step + rank)
    return [torch.randn(p.shape, generator=g) for p in m.parameters()]


def run(
    opt, m, steps: int, world: int, ranks: list[int], clip: float | None, overlap: bool = False
) -> list[float]:
    """``steps`` steps of two micro-batches; the loss a process backpropagates is its
    ``ranks``' gradients times ``world`` / (all processes): the loop's ``total * world /
    n_items`` (one process: the mean; N: its own share times N). ``overlap``: the last
    micro-batch's backward under the sharded optimizer's ``reducing`` (as the loop runs it:
    buckets reduced as their gradients come in), else every bucket reduced after it."""
    norms = []
    for s in range(steps):
        for micro in range(2):  # two micro-batches: the hooks accumulate
            total = [sum(t) for t in zip(*(grads(2 * s + micro, r, m) for r in ranks))]
            loss = sum((p * g.to(p.dtype)).sum() for p, g in zip(m.parameters(), total))
            last = overlap and micro == 1
            with opt.reducing() if last else contextlib.nullcontext():
                (loss * world / parallel.world_size() / 2).backward()
        if clip is not None:
            norms.append(float(opt.clip_(clip)))
        opt.step()
        opt.zero_grad(set_to_none=True)  # as the loop does (the masters' optimizers do it too)
    return norms


def one_process(m: torch.nn.Module, cls, kw: dict):
    """The one-process optimizer the loop builds: on fp32 masters of 16-bit weights, else on the
    weights themselves (optim.build_optimizer)."""
    groups = decay_groups(m, 0.1)
    if next(m.parameters()).dtype == torch.float32:
        return cls(groups, **kw)
    return MasterWeightsOptimizer(groups, cls, dict(kw))


def compare(out: str, optim: str, dtype: str, clip: float | None) -> None:
    dt = getattr(torch, dtype)
    world, rank = parallel.world_size(), parallel.rank()
    cls, kw = KW[optim]
    plain = dt == torch.float32  # one process keeps no masters: its state_dict is the inner's
    one = model(dt)
    ref = one_process(one, cls, kw)
    clip_one = ref.clip_ if not plain else None
    ref_norms = run(ref, one, 3, 1, list(range(world)), clip if clip_one else None)
    many = model(dt)
    opt = ShardedMastersOptimizer(decay_groups(many, 0.1), cls, dict(kw))
    norms = run(opt, many, 3, world, [rank], clip if clip_one else None)
    # the deeper model's buckets reduced in the last backward and after it: the same numbers
    deep = [model(dt, DEEP) for _ in range(2)]
    deep_norms = []
    for m, overlap in zip(deep, (False, True)):
        deep_opt = ShardedMastersOptimizer(decay_groups(m, 0.1), cls, dict(kw))
        buckets = len(deep_opt.buckets)
        clipped = clip if clip_one else None
        deep_norms.append(run(deep_opt, m, 3, world, [rank], clipped, overlap=overlap))
    overlapped = max(
        float((a - b).abs().max()) for a, b in zip(deep[0].parameters(), deep[1].parameters())
    )
    weights = max(
        float((a.float() - b.float()).abs().max())
        for a, b in zip(one.parameters(), many.parameters())
    )
    full = opt.state_dict()  # a collective; process 0 gets it whole
    result = {"weights": weights, "norms": norms, "ref_norms": ref_norms}
    result |= {"overlapped": overlapped, "deep_norms": deep_norms, "buckets": buckets}
    if rank == 0:  # the one-process optimizer's state_dict, key for key
        ref_state = ref.state_dict()
        ours, theirs = (d if plain else d["inner"] for d in (full, ref_state))
        if not plain:
            pairs = list(zip(full["master"], ref_state["master"], strict=True))
            result["masters"] = max(float((a.cpu() - b.cpu()).abs().max()) for a, b in pairs)
        result["state_keys"] = {i: sorted(s) for i, s in ours["state"].items()} == {
            i: sorted(s) for i, s in theirs["state"].items()
        }
        result["state"] = max(
            float(
                (torch.as_tensor(v).float() - torch.as_tensor(theirs["state"][i][k]).float().cpu())
                .abs()
                .max()
            )
            for i, s in ours["state"].items()
            for k, v in s.items()
        )
        result["groups"] = ours["param_groups"] == theirs["param_groups"]
    # the checkpoint (the weights, then the optimizer's state) resumes on N processes (a copy:
    # a loaded state is the optimizer's own)
    state = [copy.deepcopy(full)] if rank == 0 else [None]
    torch.distributed.broadcast_object_list(state, src=0)
    again = model(dt)
    again.load_state_dict(many.state_dict())
    back = ShardedMastersOptimizer(decay_groups(again, 0.1), cls, dict(kw))
    back.load_state_dict(state[0])
    run(back, again, 1, world, [rank], clip if clip_one else None)
    run(opt, many, 1, world, [rank], clip if clip_one else None)
    pairs = zip(again.parameters(), many.parameters())
    result["resumed"] = max(float((a - b).abs().max()) for a, b in pairs)
    if rank == 0:  # and on one process (16-bit: its weights become the masters' values)
        single = model(dt)
        single.load_state_dict(one.state_dict())
        solo = one_process(single, cls, kw)
        solo.load_state_dict(copy.deepcopy(full))
        if plain:  # the inner state loads: it steps as the reference
            result["loaded_one"] = (
                0.0 if solo.state_dict()["state"].keys() == ours["state"].keys() else 1.0
            )
        else:
            groups = decay_groups(single, 0.1)
            pairs = zip([t for g in groups for t in g["params"]], full["master"], strict=True)
            result["loaded_one"] = max(float((a - b.to(dt)).abs().max()) for a, b in pairs)
        Path(out).write_text(json.dumps(result))


def compare_each(cases: list[dict]) -> None:
    """:func:`compare` for each of ``cases`` (its keyword arguments) in turn, in the same
    processes: one launch for every case (a launch's start, its imports, costs more than a case).
    Each case builds its own models from the seed and draws its own gradients: none sees another's
    state."""
    for case in cases:
        compare(**case)
