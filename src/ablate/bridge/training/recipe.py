"""The translator's training as the core's loop takes it: its recipe, data order, optimizer and
evaluation.

Data-parallel under torchrun: ``batch_size`` items per process (the seed's "10 per GPU"), each
process a slice of one global batch order (docs/bridge.md, "Many GPUs").
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from ablate.bridge import params as bridge_params
from ablate.bridge import switches
from ablate.bridge import translator as tr
from ablate.bridge.evaluate import accuracy
from ablate.bridge.pair import Pair
from ablate.bridge.parallel import gather, mean_values, shard
from ablate.bridge.params import BridgeParams
from ablate.core.execution import parallel
from ablate.core.models import generation
from ablate.core.training import loop, speed
from ablate.core.training.params import LoopParams
from ablate.core.training.recipe import Recipe


def optimizer(translator: tr.BottleneckedGatedTranslator, p: BridgeParams):
    from transformers import get_linear_schedule_with_warmup

    gates = {id(g) for g in translator.gate_parameters()}
    rest = [q for q in translator.parameters() if id(q) not in gates]
    opt = torch.optim.AdamW(
        [
            {"params": rest, "lr": p.lr, "weight_decay": p.weight_decay},
            {
                "params": translator.gate_parameters(),
                "lr": p.lr * p.gate_lr_multiplier,
                "weight_decay": 0.0,
            },
        ],
        betas=(0.9, 0.98),
        **speed.fp32_optimizer_kwargs(translator.parameters()),
    )
    return opt, get_linear_schedule_with_warmup(opt, p.warmup_steps, p.steps)


def _evaluate(pair: Pair, translator, items) -> list[dict[str, Any]]:
    """Bridged evaluation of the translator's current state (eval mode, then back)."""
    was_training = translator.training
    translator.eval()
    try:
        return pair.evaluate_latent(translator, items)
    finally:
        translator.train(was_training)
        generation.release(pair.target)  # the decode cache's memory back to the training


def _batches(n: int, batch_size: int, seed: int):
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for i in range(0, n - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


class BatchOrder:
    """Step s takes the s-th global batch of one seeded stream of shuffled epochs (each without
    its incomplete last batch); a resumed run draws the stream up to its step again."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.stream, self.drawn = _batches(n, batch_size, seed), []

    def __call__(self, step: int) -> list[int]:
        while len(self.drawn) <= step:
            self.drawn.append(next(self.stream))
        return self.drawn[step]


def say(*args, **kwargs) -> None:
    if parallel.rank() == 0:  # one progress log, not one per process
        print(*args, **kwargs, flush=True)


def global_batch(p: BridgeParams, n_train: int) -> int:
    """Items per step over all processes: ``batch_size`` per process (the seed's per GPU)."""
    w = parallel.world_size()
    if w == 1:
        return min(p.batch_size, n_train)
    if p.batch_size * w > n_train:
        raise bridge_params.BridgeConfigError(
            f"batch_size {p.batch_size} x {w} processes exceeds the {n_train} training items"
        )
    return p.batch_size * w


class Evaluations:
    """Every bridged evaluation of a run: the curve, best state, patience count, last rows."""

    def __init__(self, pair: Pair, translator, eval_items, p: BridgeParams, label: str):
        self.pair, self.translator, self.eval_items = pair, translator, eval_items
        self.p, self.label = p, label
        self.curve: list[dict] = []
        self.best: dict[str, Any] = {"accuracy": -1.0}
        self.bad_evals = 0
        self.last_rows: list[dict] = []
        self.started = time.time()  # moved back by a resumed run's seconds

    def rows(self) -> list[dict]:
        """Each process evaluates a share of the items, gathered in order."""
        return gather(_evaluate(self.pair, self.translator, shard(self.eval_items)))

    def __call__(self, at: int) -> dict[str, Any] | None:
        """Evaluate at step ``at``; early stopping's stop (before the last step), or None."""
        self.last_rows = self.rows()
        acc = accuracy(self.last_rows)
        self.curve.append({"step": at, **acc})
        best = self.best
        if acc["accuracy"] > best["accuracy"]:
            state = {k: v.detach().clone() for k, v in self.translator.state_dict().items()}
            best.update(accuracy=acc["accuracy"], step=at, state=state)
            self.bad_evals = 0
        else:
            self.bad_evals += 1
        say(
            f"[{self.label}] eval step {at}: bridged accuracy {acc['accuracy']:.3f} "
            f"(F1 {acc['f1']:.3f}); best {best['accuracy']:.3f} at step {best['step']}"
        )
        patience = switches.stop_patience(self.p)
        if patience is None or self.bad_evals < patience or at >= self.p.steps:
            return None
        return {"reason": "early_stopping", "step": at, "detail": {"patience": patience}}

    def last_step(self) -> int | None:
        """The step evaluated last (None: none yet)."""
        return self.curve[-1]["step"] if self.curve else None

    def seconds(self) -> float:
        """The seconds trained, a resumed run's earlier segments included."""
        return time.time() - self.started

    def state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(plain values, the best state's tensors): what a checkpoint carries."""
        best = {k: v for k, v in self.best.items() if k != "state"}
        values = {"curve": self.curve, "best": best, "bad_evals": self.bad_evals}
        values |= {"last_rows": self.last_rows, "seconds": self.seconds()}
        return values, self.best.get("state", {})

    def unfit(self, tensors: Any) -> str | None:
        """Why a checkpoint's best state cannot be this translator's (None: it fits, or none)."""
        if not isinstance(tensors, dict):
            return f"a {type(tensors).__name__}, not the translator's tensors by name"
        own = self.translator.state_dict()
        for name in sorted(set(own) | set(tensors)) if tensors else []:
            got = tensors.get(name)
            if name not in own:
                return f"{name}: not one of the translator's tensors"
            if not isinstance(got, torch.Tensor):
                return f"{name}: not in the file"
            if got.shape != own[name].shape or got.dtype != own[name].dtype:
                return (
                    f"{name}: {got.dtype} {tuple(got.shape)} where the translator's is "
                    f"{own[name].dtype} {tuple(own[name].shape)}"
                )
        return None

    def load(self, values: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.curve, self.bad_evals = values["curve"], values["bad_evals"]
        self.last_rows = values["last_rows"]
        self.best = {**values["best"], **({"state": tensors} if tensors else {})}
        self.started = time.time() - values["seconds"]


#: the stall watchdog's bound of a translator training (:mod:`ablate.core.training.watchdog`)
_STALL_S = 3600


class TranslatorRecipe(Recipe):
    """A translator's training as the loop takes it (``saves`` false: no checkpoints)."""

    HELD_OUT_LOSS = False

    def __init__(
        self, pair: Pair, translator, p: BridgeParams, n_train: int, evaluation=None, saves=True
    ):
        super().__init__(p, collator=lambda items: {"items": items}, evaluation=evaluation)
        self.pair, self.translator = pair, translator
        n_global = global_batch(p, n_train)
        self.batches = BatchOrder(n_train, n_global, p.seed)
        self.loop = LoopParams(
            seed=p.seed,
            batch_size=n_global,  # one global batch a step, no accumulation
            grad_accum=1,
            max_steps=p.steps,
            max_grad_norm=p.grad_clip,
            gradient_checkpointing=False,
            compile_layers=False,  # the pair compiles the target's layers itself
            logging_steps=p.log_every,
            eval_steps=p.eval_every,
            eval_batch_size=p.eval_batch_size,
            # a checkpoint at every evaluation, the newest alone kept, none after the outputs
            save_steps=p.eval_every if saves else 0,
            save_total_limit=1,
            keep_checkpoints=False,
            # an evaluation decodes between two steps: a bound from step times would be too short
            stall_s=_STALL_S,
            # none of the loop's own stop rules: early stopping is the evaluation's
            no_learning_steps=0,
            no_learning_min_gain=0.0,
            plateau_patience=0,
            plateau_min_delta=0.0,
            plateau_min_steps=None,
        )
        self.last: dict[str, torch.Tensor] = {}
        self.n_tok: torch.Tensor | int = 0

    @property
    def loop_params(self) -> LoopParams:
        return self.loop

    def bf16(self) -> bool:
        return False

    def order(self, step: int, n: int) -> list[int]:
        return self.batches(step)

    def step_items(self, batches: list[dict]) -> None:
        return None  # Pair.loss is already this process's share of the mean

    def loss(self, model, batch: dict, step: int, n_items: None) -> torch.Tensor:
        loss, parts, self.n_tok = self.pair.loss(model, batch["items"], step)
        # the logged loss is the logging step's own, not the loop's mean since the last log (a
        # non-finite one is the loop's stop rule's, read at its next logging or saving step);
        # kept on the device, read by a logging step (log_parts), not by every step
        self.last = {"loss": loss.detach(), **parts}
        return loss

    def tokens(self, batch: dict) -> torch.Tensor | int:
        return self.n_tok  # counted by the batch's loss (source + target input), on the device

    def log_parts(self) -> dict[str, float]:
        return mean_values(self.last)  # the one host read of a logging step's parts

    def optimizer(self, model, *, layout, sharded):
        return optimizer(self.translator, self.params)


def translator_trainer(
    pair: Pair,
    translator,
    train_items,
    p: BridgeParams,
    label: str,
    folder: Path | None = None,
    evaluation: Evaluations | None = None,
) -> loop.Trainer:
    """The loop's trainer of a translator training (``folder`` None: no checkpoints); the global
    RNG is left as it was (setup seeds torch: the dropout goes on from the translator's)."""
    recipe = TranslatorRecipe(pair, translator, p, len(train_items), evaluation, folder is not None)
    spec = loop.Spec(
        Path(os.devnull) if folder is None else folder,  # none: a save fails, never misplaced
        label,
        pair.tgt_tok.pad_token_id,
        recipe=recipe,
        replicated=True,
    )
    with torch.random.fork_rng():
        return loop.setup(spec, model=translator, train_dataset=train_items, eval_dataset=None)
