"""The training loop of every run: :func:`setup` builds a trainer from its :class:`Spec`,
:func:`train` trains it, and one optimizer step is :func:`step`, read in one screen.

A study plugs in its :class:`~.recipe.Recipe`, nothing else. One process trains whole weights
(fp32 masters of 16-bit ones where ``master_weights`` resolves on); N processes take a
data-parallel recipe (:data:`~.memory.RECIPES`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ablate.core.execution import interrupts, parallel
from ablate.core.training import sharded_masters, sharding, speed
from ablate.core.training.data import PolicyCollator
from ablate.core.training.memory import SHARDED_WEIGHTS
from ablate.core.training.monitor import Progress, StopRules, Throughput
from ablate.core.training.optim import MasterWeightsOptimizer
from ablate.core.training.params import LoopParams, TrainingConfigError
from ablate.core.training.recipe import Recipe
from ablate.core.training.watchdog import StallWatchdog


@dataclass(frozen=True)
class Spec:
    """What :func:`setup` builds a trainer from. ``replicated``: N processes hold whole copies of
    a small model (DDP) instead of a data-parallel recipe."""

    checkpoints: Path
    label: str
    pad_token_id: int
    recipe: Recipe
    reporters: tuple = ()
    replicated: bool = False


@dataclass
class State:
    """What a checkpoint's ``loop_state.json`` holds."""

    step: int = 0
    tokens_seen: int = 0
    log_history: list[dict[str, Any]] = field(default_factory=list)
    evaluation: dict[str, Any] = field(default_factory=dict)
    segments: list[dict[str, Any]] = field(default_factory=list)
    #: the step losses since the last log, at a save: a resume's first log averages them too
    unlogged_losses: list[float] = field(default_factory=list)


@dataclass
class Trainer:
    """What :func:`setup` built for one run (torchtitan's Trainer)."""

    spec: Spec
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_data: Any
    eval_data: Any
    share: int  # this process's examples per step
    micro: int  # its examples per micro-batch
    sharded: bool
    autocast: Callable[[], contextlib.AbstractContextManager]
    recipe: str | None = None  # N > 1 processes, not replicated: memory.RECIPES
    state: State = field(default_factory=State)
    stop_rules: StopRules | None = None
    throughput: Throughput = field(default_factory=Throughput)
    losses: list[torch.Tensor] = field(default_factory=list)  # step losses since the last log
    pending_tokens: torch.Tensor | int = 0  # counted on the device, not yet in state
    last_lr: float = 0.0  # the learning rate of the last step
    #: set by the run driver (:func:`~.driver.drive`): the seconds of this segment's training
    #: (None: none trained) and the step it resumed from (None: a fresh start)
    train_s: float | None = None
    resumed_from_step: int | None = None

    @property
    def params(self) -> LoopParams:
        return self.spec.recipe.loop_params

    @property
    def stop(self) -> dict[str, Any]:
        """The training's stop: a stop rule's, or its last step."""
        return self.stop_rules.stop or {
            "reason": "max_steps",
            "step": self.state.step,
            "detail": {"max_steps": self.params.max_steps},
        }

    @property
    def master(self) -> MasterWeightsOptimizer | None:
        return self.optimizer if isinstance(self.optimizer, MasterWeightsOptimizer) else None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def shares(batch_size: int, grad_accum: int, world: int) -> tuple[int, int]:
    """(examples per step, examples per micro-batch) of one of ``world`` processes: the
    accumulation split first (the same micro-batches, spread over processes), else the batch."""
    if grad_accum % world == 0:
        return batch_size * grad_accum // world, batch_size
    if batch_size % world == 0:
        return batch_size * grad_accum // world, batch_size // world
    raise TrainingConfigError(
        f"the global batch (batch_size {batch_size} x grad_accum {grad_accum}) does not split "
        f"over {world} data-parallel processes: make grad_accum or batch_size a multiple of {world}"
    )


def setup(spec: Spec, *, model, train_dataset, eval_dataset) -> Trainer:
    """The trainer of ``spec`` on ``model`` (on its device; sharded here when N > 1 processes)."""
    p = spec.recipe.loop_params
    torch.manual_seed(p.seed)
    if p.compile_layers:
        speed.compile_layers(model)
    bf16 = spec.recipe.bf16()
    recipe = None
    if parallel.world_size() > 1 and not spec.replicated:
        memory = sharding.device_memory(next(model.parameters()).device)
        recipe, why = spec.recipe.data_parallel(model, parallel.world_size(), memory)
        print(f"{spec.label}: {parallel.world_size()} processes, {recipe} ({why})", flush=True)
    sharded = recipe == SHARDED_WEIGHTS
    if sharded:  # fp32 shards, cast to bf16 per layer by FSDP's policy: no autocast
        model = sharding.shard(model, torch.bfloat16 if bf16 else torch.float32)
    elif spec.replicated and parallel.world_size() > 1:
        model = replicate(model)
    if p.gradient_checkpointing:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    model.train()
    optimizer, scheduler = spec.recipe.optimizer(model, layout=recipe, sharded=sharded)
    device_type = next(model.parameters()).device.type
    on = bf16 and not sharded
    autocast = functools.partial(torch.autocast, device_type, dtype=torch.bfloat16, enabled=on)

    share, micro = shares(p.batch_size, p.grad_accum, parallel.world_size())
    if len(train_dataset) == 0:
        raise TrainingConfigError(f"{spec.label}: no training examples")
    has_eval = eval_dataset is not None and len(eval_dataset) > 0 and p.eval_steps > 0
    if has_eval and not spec.recipe.HELD_OUT_LOSS:  # its held-out loss would be next-token's
        raise TrainingConfigError(f"{spec.label}: a study's own loss needs its own evaluation")
    if spec.recipe.collator is None:
        spec = replace(
            spec, recipe=replace(spec.recipe, collator=PolicyCollator(spec.pad_token_id))
        )
    return Trainer(
        spec=spec,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_data=train_dataset,
        eval_data=eval_dataset if has_eval else None,
        share=share,
        micro=micro,
        sharded=sharded,
        autocast=autocast,
        recipe=recipe,
        stop_rules=StopRules(p),
    )


def replicate(model: torch.nn.Module) -> torch.nn.Module:
    """DDP around a whole copy of ``model`` in each process (gradients averaged)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    return DistributedDataParallel(model, device_ids=ids)


def step_examples(trainer: Trainer, step: int) -> list:
    """This process's examples of optimizer step ``step`` (from 0): the r-th share of its order."""
    data, first = trainer.train_data, parallel.rank() * trainer.share
    order = trainer.spec.recipe.order(step, len(data))
    return [data[i] for i in order[first : first + trainer.share]]


def accumulating(trainer: Trainer, last: bool) -> contextlib.AbstractContextManager:
    """Around a micro-batch's forward and backward: the gradients of N processes are reduced
    once per step, in the last micro-batch's backward."""
    if trainer.sharded:
        return sharding.accumulating(trainer.model, last=last)
    if last and isinstance(trainer.optimizer, sharded_masters.ShardedMastersOptimizer):
        return trainer.optimizer.reducing()
    if not last and trainer.spec.replicated and parallel.world_size() > 1:  # DDP
        return trainer.model.no_sync()
    return contextlib.nullcontext()


def _to(batch: dict, device: torch.device) -> dict:
    """The batch's tensors on ``device``; to a GPU through pinned memory: a copy from pageable
    memory waits for the queued kernels."""
    pin = device.type == "cuda"
    return {
        k: (v.pin_memory() if pin else v).to(device, non_blocking=True)
        if isinstance(v, torch.Tensor)
        else v
        for k, v in batch.items()
    }


def step(trainer: Trainer, examples: list) -> torch.Tensor | None:
    """One optimizer step on this process's ``examples``; returns the gradient norm before
    clipping (None when ``max_grad_norm`` is 0)."""
    p, recipe = trainer.params, trainer.spec.recipe
    batches = recipe.micro_batches(examples, trainer.micro)
    n_items = recipe.step_items(batches)  # on the host, before any forward (no device sync)
    world = parallel.world_size()
    step_loss = None
    for i, batch in enumerate(batches):
        batch = _to(batch, trainer.device)
        with accumulating(trainer, last=i == len(batches) - 1):  # the backward inside: it reduces
            with trainer.autocast():
                loss = recipe.loss(trainer.model, batch, trainer.state.step + 1, n_items)
            loss.backward()
        trainer.stop_rules.watch_micro_loss(trainer.state.step + 1, loss)
        step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
        trainer.pending_tokens = trainer.pending_tokens + recipe.tokens(batch)
    trainer.losses.append(step_loss / world)  # this process's part of the step's mean loss
    grad_norm = clip(trainer, p.max_grad_norm)
    trainer.last_lr = trainer.optimizer.param_groups[0]["lr"]  # the schedule moves on below
    trainer.optimizer.step()
    trainer.scheduler.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.state.step += 1
    return grad_norm


def clip(trainer: Trainer, max_norm: float) -> torch.Tensor | None:
    """Clip the gradients to ``max_norm`` (0: no clip); the norm before clipping."""
    if not max_norm:
        return None
    if trainer.master is not None:  # the gradients live on the fp32 masters
        return trainer.master.clip_(max_norm)
    params = [t for t in trainer.model.parameters() if t.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # sharded: a DTensor


@torch.no_grad()
def evaluate(trainer: Trainer, watchdog: StallWatchdog | None = None) -> float:
    """The mean next-token loss over every labelled token of the held-out examples (all
    processes run the same number of forwards: sharded forwards are collectives)."""
    data, p, recipe = trainer.eval_data, trainer.params, trainer.spec.recipe
    mine = list(range(parallel.rank(), len(data), parallel.world_size()))
    size = p.eval_batch_size
    most = math.ceil(len(data) / parallel.world_size())  # the examples of the busiest process
    rounds = math.ceil(most / size)
    trainer.model.eval()
    total = torch.zeros((), dtype=torch.float64, device=trainer.device)
    count = torch.zeros((), dtype=torch.float64, device=trainer.device)
    for r in range(rounds):
        chunk = mine[r * size : (r + 1) * size]
        batch = _to(recipe.collator([data[i] for i in (chunk or [0])]), trainer.device)
        with trainer.autocast():
            t, n = recipe.batch_loss(trainer.model, batch)
        if chunk:  # a process with no examples left joins the forward and counts nothing
            total += t.double()
            count += n.double()
        if watchdog is not None:
            watchdog.progress()
    trainer.model.train()
    total, count = parallel.sum_tensor(total), parallel.sum_tensor(count)
    return float(total / count.clamp(min=1))


def _flush_tokens(trainer: Trainer) -> None:
    """The tokens counted on the device into the state: a sync."""
    tokens = parallel.sum_int(int(trainer.pending_tokens))
    trainer.state.tokens_seen += tokens
    trainer.throughput.tokens += tokens
    trainer.pending_tokens = 0


def log_train(trainer: Trainer, grad_norm) -> dict[str, float]:
    """The entry of a logging step: the mean step loss since the last one, the learning rate,
    the gradient norm."""
    _flush_tokens(trainer)
    loss = parallel.sum_tensor(torch.stack(trainer.losses).mean().float())
    trainer.losses = []
    entry = {"step": trainer.state.step, "loss": float(loss), "learning_rate": trainer.last_lr}
    if grad_norm is not None:
        entry["grad_norm"] = float(grad_norm)
    return entry | trainer.spec.recipe.log_parts()


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def train(trainer: Trainer, interrupt: interrupts.InterruptWatch | None = None) -> None:
    """Train from ``trainer.state.step`` to ``max_steps`` or a stop rule; checkpoints every
    ``save_steps``, and one on an interrupt before it raises. ``interrupt``: the driver's watch,
    held past the loop until the outputs are complete; None: the loop's own."""
    from ablate.core.training import saving

    p, state, rules, spec = trainer.params, trainer.state, trainer.stop_rules, trainer.spec
    evaluation = spec.recipe.evaluation
    rules.replay(state.log_history)  # the patience counters and first loss of a resumed run
    progress = Progress(spec.label, trainer.throughput)
    watchdog = StallWatchdog(p, trainer.throughput.step_times, spec.label)
    own = interrupt is None
    interrupt = interrupts.InterruptWatch() if own else interrupt
    world = parallel.world_size()
    how = f"{trainer.share} examples per step and process, {world} process(es), device {trainer.device}"
    progress.begin(state.step, p.max_steps, how)
    for r in spec.reporters:
        r.begin(state.step)
    save = p.save_steps > 0
    interrupt.install()
    watchdog.start()
    try:
        while state.step < p.max_steps and rules.stop is None:
            t0 = time.perf_counter()
            grad_norm = step(trainer, step_examples(trainer, state.step))
            trainer.throughput.step_times.append(time.perf_counter() - t0)
            watchdog.progress()
            s, last = state.step, state.step >= p.max_steps
            do_log = s == 1 or last or _due(s, p.logging_steps)
            evaluates = trainer.eval_data is not None or evaluation is not None
            do_eval = evaluates and _due(s, p.eval_steps)
            do_save = save and _due(s, p.save_steps)
            stopping = interrupt.requested()
            due = do_log or do_eval or do_save or last or stopping
            if due and parallel.any_process(rules.nonfinite() is not None):
                rules.nonfinite_elsewhere(s)
                break  # never log, evaluate or save weights that took a non-finite update
            if do_log:
                entry = log_train(trainer, grad_norm)
                _record(trainer, progress, entry)
                rules.observe_train_loss(s, entry["loss"])
            if do_eval and evaluation is not None:  # the study's own, with its stop rule
                stopped = rules.observe_evaluation(evaluation(s))
                watchdog.progress()
                if stopped is not None:  # logged: a checkpoint of this step resumes stopped
                    state.log_history.append(stopped)
                    break  # unsaved: training ends at this evaluation
            elif do_eval:
                entry = {"step": s, "eval_loss": evaluate(trainer, watchdog)}
                _record(trainer, progress, entry)
                stop = rules.observe_eval_loss(s, entry["eval_loss"])
                if stop and stop["reason"] == "nonfinite":
                    break
            if do_save or stopping:
                _flush_tokens(trainer)
                saving.save(trainer)
                watchdog.progress()
            if stopping:
                raise interrupt.interrupted(s)
    finally:  # the watchdog must not outlive its training, nor the loop's own handlers
        watchdog.stop()
        if own:
            interrupt.restore()
        for r in spec.reporters:
            r.end()
    _flush_tokens(trainer)


def _record(trainer: Trainer, progress: Progress, entry: dict[str, Any]) -> None:
    trainer.state.log_history.append(entry)
    progress.log(entry["step"], trainer.params.max_steps, entry)
    for r in trainer.spec.reporters:
        r.log(entry["step"], entry, trainer.state.tokens_seen)
