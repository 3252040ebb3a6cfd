"""A worker for ablate.core.execution.parallel.launch (tests/core/test_step_collectives.py): one
optimizer step of the training loop on a tiny Llama in N processes (gloo), every collective it
issues counted by torch's profiler (the ``c10d::`` operators that every backend dispatches through)
and placed on the step's timeline beside the gradients' accumulations, rank 0 writing them to
``out``; :func:`count_each` counts several cases in one launch. In a module that imports no test
module (a test module's imports change the run: launch_hooks.py says why)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import LlamaConfig, LlamaForCausalLM

from ablate.core.execution import parallel
from ablate.core.training import loop, params
from ablate.core.training.recipe import Recipe

#: The tiny model: each decoder layer and the root (embeddings, final norm, lm_head) one FSDP2 unit
LAYERS = 3
VOCAB = 64
#: the profiler's name of a gradient's accumulation into a weight (autograd's node; its hooks run inside)
ACCUMULATE = "torch::autograd::AccumulateGrad"


def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=LAYERS, num_attention_heads=2,
        num_key_value_heads=1, vocab_size=VOCAB, pad_token_id=0,
    )  # fmt: skip
    return LlamaForCausalLM(cfg)


def examples(n: int) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [
        {"input_ids": torch.randint(1, VOCAB, (12,), generator=g).tolist(), "prompt_length": 4}
        for _ in range(n)
    ]


def count(out: str, overrides: dict, replicated: bool = False) -> None:
    """One warm-up step (the optimizer's state is made in its first), then one counted step."""
    p = params.resolve_params(
        {"max_steps": 4, "eval_size": 0, "eval_steps": 0, "save_steps": 0, **overrides},
        "finetune",
    )
    spec = loop.Spec(Path(out).parent, "count", 0, recipe=Recipe(p), replicated=replicated)
    trainer = loop.setup(spec, model=model(), train_dataset=examples(64), eval_dataset=None)
    loop.step(trainer, loop.step_examples(trainer, 0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loop.step(trainer, loop.step_examples(trainer, 1))
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    names = collections.Counter(e.name for e in events if e.name.startswith("c10d::"))
    # the step's timeline: each gradient's accumulation (its hooks run inside) and each collective
    timeline = [
        (e.name, e.time_range.start, e.time_range.end)
        for e in events
        if e.name.startswith("c10d::") or e.name == ACCUMULATE
    ]
    buckets = getattr(trainer.optimizer, "buckets", ())
    alone = sum(b.owner is not None for b in buckets)  # one weight: reduced to its owner
    result = {"counts": names, "recipe": trainer.recipe, "timeline": timeline}
    result |= {"buckets": len(buckets), "alone": alone}
    result["weights"] = len(list(trainer.model.parameters()))
    if parallel.rank() == 0:
        Path(out).write_text(json.dumps(result))


def count_each(cases: list[dict]) -> None:
    """:func:`count` for each of ``cases`` (its keyword arguments) in turn, in the same processes:
    one launch for every case (a launch's start, its imports, costs more than a case). Each case
    builds its own model and trainer, warms up its own step and profiles only its own."""
    for case in cases:
        count(**case)
