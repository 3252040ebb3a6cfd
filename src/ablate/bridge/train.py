"""Training of one grid entry: a translator between a frozen source and a frozen target.

Evaluated (bridged accuracy, greedy) at step 0, every ``eval_every`` steps and at the end; early
stopping on bridged accuracy with ``patience``; ``restore_best`` makes the final state the best
evaluated one, *re-evaluated* (final is measured, not copied). Writes ``out_dir/translator/``
(safetensors + config + hash manifest), ``out_dir/samples.parquet`` (per-sample rows of the final
evaluation, for paired tests) and, last, ``out_dir/summary.json``.

The training is the core's loop (:mod:`ablate.core.training.loop`) with the bridge's recipe
(:class:`TranslatorRecipe`): its loss (:meth:`Pair.loss`), its data order (:class:`BatchOrder`),
its optimizer (:func:`optimizer`) and its evaluation with early stopping (:class:`Evaluations`),
run by the core's driver
(:func:`ablate.core.training.driver.drive`, as every training: the resume from the newest complete
checkpoint of the same run key and inputs, the non-finite outcome, the final evaluation, the
checkpoints' removal) as a :class:`TranslatorRun`, whose outputs are the bridge's. Its checkpoints are
the loop's (:mod:`ablate.core.training.saving`, ``<out>/checkpoints/checkpoint-N``, the
evaluation's curve and best state with them), one at every evaluation training goes on from: a
rerun (a lost Vast instance's retry, a killed job) resumes from the newest one; they go once the
outputs are written.

Data-parallel under torchrun (:mod:`ablate.core.execution.parallel`, the data split of
:mod:`ablate.bridge.parallel`; the core's launcher,
``ablate.core.execution.parallel.launch("ablate.bridge.train:train_entry", kwargs, N, threads)``):
``batch_size`` items per process and step (the seed's "10 per GPU"), each process a slice of
one global batch order, the translator replicated and DDP averaging the gradients (the loop's
``replicated``); the evaluation is split over the processes and gathered; only rank 0 writes.
With ``states["source"]`` (a cache folder of :mod:`ablate.bridge.states`) the source model's
weights are not loaded at all; with ``states["teacher"]`` the KL term reads its teacher's rows
instead of a target forward pass.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablate.bridge import models, switches, world
from ablate.bridge import params as bridge_params
from ablate.bridge import states as frozen
from ablate.bridge import translator as tr
from ablate.bridge.pair import Pair, card_inputs, load_pair
from ablate.bridge.parallel import gather, mean_value, shard
from ablate.bridge.params import BridgeParams
from ablate.core.execution import parallel
from ablate.core.models import generation
from ablate.core.outputs import checkpoint_integrity, io, provenance
from ablate.core.outputs.phases import Phases
from ablate.core.training import driver, loop, saving, speed
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
    """The recipe's ``order``: step s (from 0) takes the s-th global batch of one seeded
    stream of epochs (each a shuffle of the items, its incomplete last batch dropped); a resumed
    run draws the stream up to its step again."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.stream, self.drawn = _batches(n, batch_size, seed), []

    def __call__(self, step: int) -> list[int]:
        while len(self.drawn) <= step:
            self.drawn.append(next(self.stream))
        return self.drawn[step]


def _say(*args, **kwargs) -> None:
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
    """Every bridged evaluation of a run (the recipe's ``evaluation``): the curve, the best state so
    far (for ``restore_best``), the evaluations without improvement (early stopping's
    patience), the last rows; a checkpoint carries them (:meth:`state`), and the seconds trained."""

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
        from ablate.bridge.evaluate import accuracy

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
        _say(
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
        """Why a checkpoint's best state cannot be this translator's (None: it fits, or there is
        none yet): a restore_best would load it into the translator at the run's end."""
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
        self.curve, self.bad_evals, self.last_rows = (
            values["curve"],
            values["bad_evals"],
            values["last_rows"],
        )
        self.best = {**values["best"], **({"state": tensors} if tensors else {})}
        self.started = time.time() - values["seconds"]


#: the stall watchdog's bound of a translator training (:mod:`ablate.core.training.watchdog`)
STALL_S = 3600


class TranslatorRecipe(Recipe):
    """A translator's training as the loop takes it (a :class:`~ablate.core.training.recipe.Recipe`):
    the loss :meth:`Pair.loss` (this process's share of the global batch's mean loss, each term
    normalised by the loop's :func:`~ablate.core.training.loss.share_of_mean`), one global batch
    of items a step in :class:`BatchOrder`, the bridge's :func:`optimizer` in fp32 (the pair's
    dtypes are its own) and its evaluation (:class:`Evaluations`); a logging step logs the last
    step's loss and its parts. Its params are the entry's :class:`BridgeParams`, which give the
    loop its own (:attr:`loop_params`); ``saves`` false: no checkpoint (a benchmark's run)."""

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
            # a checkpoint at every evaluation, the newest alone kept, none once the outputs
            # are written
            save_steps=p.eval_every if saves else 0,
            save_total_limit=1,
            keep_checkpoints=False,
            # an evaluation decodes eval_size items between two steps: the watchdog's bound from
            # step times alone would be too short for it
            stall_s=STALL_S,
            # none of the loop's own stop rules: early stopping is the evaluation's
            no_learning_steps=0,
            no_learning_min_gain=0.0,
            plateau_patience=0,
            plateau_min_delta=0.0,
            plateau_min_steps=None,
        )
        self.last: dict[str, float] = {}
        self.n_tok = 0

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
        # non-finite one is the loop's stop rule's, read at its next logging or saving step)
        self.last = {"loss": mean_value(loss), **parts}
        return loss

    def tokens(self, batch: dict) -> int:
        return self.n_tok  # counted by the batch's loss (source input + target input)

    def log_parts(self) -> dict[str, float]:
        return self.last

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
    """The loop's trainer of a translator training (:func:`ablate.core.training.loop.setup` with
    :class:`TranslatorRecipe`), what :func:`train_entry` trains and the GPU benchmarks time one
    :func:`~ablate.core.training.loop.step` of. ``folder``: where its checkpoints go (None: a
    run that saves none, a benchmark's); ``evaluation``: the recipe's (:class:`Evaluations`). The
    global RNG is left as it was (setup seeds torch: the dropout goes on from the translator's)."""
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


def _logs(p: BridgeParams, step: int) -> bool:
    """A step of the bridge's loss curve: every ``log_every`` and the last (the loop also logs
    step 1)."""
    return step % p.log_every == 0 or step == p.steps


def _loss_entry(e: dict[str, Any]) -> dict[str, Any]:
    """The logged loss and its parts, without the loop's learning rate and gradient norm."""
    return {"step": e["step"], "loss": e["loss"]} | {
        k: v for k, v in e.items() if k not in ("step", "loss", "learning_rate", "grad_norm")
    }


@dataclass
class _Entry:
    """One grid entry set up to train: its resolved params, data, models and translator."""

    p: BridgeParams
    label: str
    train_items: list
    eval_items: list
    pair: Pair
    translator: tr.BottleneckedGatedTranslator
    cached_source: bool
    cached_teacher: bool

    @property
    def n_params(self) -> int:
        return sum(t.numel() for t in self.translator.parameters())


def _set_up(spec: bridge_params.RunSpec, train_file, eval_file, cards, states) -> _Entry:
    """Check the params, read the data, load the pair (source states and the KL teacher from
    their caches when ``states`` names them) and build the translator, seeded."""
    p = bridge_params.check(spec.params, spec.where)
    dataset_kind = spec.kind
    train_items = world.load_dataset(train_file, dataset_kind)
    eval_items = world.load_dataset(eval_file, dataset_kind)[: p.eval_size]
    torch.manual_seed(p.seed)
    cache = None if "source" not in states else frozen.open_cache(states["source"])
    teacher = None if "teacher" not in states else frozen.open_cache(states["teacher"], "teacher")
    pair = load_pair(*cards, dataset_kind, p, cache, teacher)
    translator = tr.build(p, pair.source, pair.target, spec.where).to(pair.device)
    entry = _Entry(
        p,
        f"bridge {spec.run_id}",
        train_items,
        eval_items,
        pair,
        translator,
        cached_source=cache is not None,
        cached_teacher=teacher is not None,
    )
    _say(
        f"[{entry.label}] {len(train_items)} train / {len(eval_items)} eval items ({dataset_kind}); "
        f"translator {entry.n_params / 1e6:.3f} M params, K={p.K}; "
        f"{parallel.world_size()} process(es); source states "
        + ("cached" if entry.cached_source else "live")
        + ", KL teacher "
        + ("cached" if entry.cached_teacher else "live")
    )
    return entry


def train_entry(
    spec: bridge_params.RunSpec,
    *,
    source_card,
    target_card,
    train_file: str | os.PathLike,
    eval_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    states: dict[str, str | os.PathLike] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one grid entry; write translator/, samples.parquet, summary.json.

    ``states``: ``source`` -> a cache folder of :func:`ablate.bridge.states.compute` for this
    entry's source and data, read instead of running the source; ``teacher`` -> likewise for the
    KL teacher's forward pass. Under torchrun every process trains
    and rank 0 alone writes (the others return their rank and steps)."""
    phases = Phases()
    states = dict(states or {})
    run_id = spec.run_id
    models.check_pinned({"source": source_card, "target": target_card}, spec.identity)
    out = Path(out_dir)
    e = _set_up(spec, train_file, eval_file, (source_card, target_card), states)
    p = e.p
    # "checkpoint": the loop's format (an older run's state.pt checkpoints are dropped, not read)
    key = {
        "run_id": run_id,
        "params": p.as_dict(),
        "world_size": parallel.world_size(),
        "checkpoint": "loop",
    }
    inputs = {
        "train_file": train_file,
        "eval_file": eval_file,
        **card_inputs(source_card=source_card, target_card=target_card),
        # the caches' own records (their provenance), not GBs of states to hash
        **{
            f"{what}_states": Path(folder) / "summary.json"
            for what, folder in sorted(states.items())
        },
    }
    speed.tf32_matmuls(e.pair.device)
    e.pair.compiled = e.pair.device.type == "cuda"  # the target's layers, for the training forward
    evaluation = Evaluations(e.pair, e.translator, e.eval_items, p, e.label)
    folder = out / checkpoint_integrity.CHECKPOINTS_DIR
    trainer = translator_trainer(
        e.pair, e.translator, e.train_items, p, e.label, folder, evaluation
    )
    run = TranslatorRun(
        kind="bridge",
        recipe=trainer.spec.recipe,
        out_dir=out,
        run_key=key,
        summary_extra={},
        config_slice=spec.record_slice(),
        inputs=inputs,
        phases=phases,
        label=e.label,
        run_spec=spec,
        entry=e,
    )
    # the core's driver: resume, the loop, the non-finite outcome, the final evaluation, the
    # outputs (TranslatorRun.write), the checkpoints' removal
    summary = driver.drive(run, trainer)
    if parallel.rank() != 0:
        return {"run_id": run_id, "world_size": parallel.world_size(), **summary}
    _say(
        f"[{e.label}] done: peak {summary['peak']:.3f} at step {summary['peak_step']}, final "
        f"{summary['final']:.3f}, {summary['steps_done']} steps ({summary['stop_reason']}), "
        f"{summary['wall_s']:.1f} s"
    )
    return summary


@dataclass(frozen=True, kw_only=True)
class TranslatorRun(driver.TrainRun):
    """A grid entry's run as the core's driver takes it (a
    :class:`~ablate.core.training.driver.TrainRun`, its recipe :class:`TranslatorRecipe`) with the
    bridge's outputs: the final state (``restore_best``: the best evaluated one, re-evaluated:
    final is measured, not copied), then, by process 0, translator/, samples.parquet and, last,
    summary.json."""

    run_spec: bridge_params.RunSpec
    entry: _Entry

    def write(self, trainer: loop.Trainer) -> dict[str, Any] | None:
        e, ev = self.entry, self.recipe.evaluation
        train_s = ev.seconds()
        restored_from, final_rows = None, ev.last_rows
        if e.p.restore_best and ev.best.get("state") is not None:
            e.translator.load_state_dict(ev.best["state"])
            restored_from = ev.best["step"]
            final_rows = ev.rows()  # every process: a gather
        if parallel.rank() != 0:
            return None
        run_id, p, out = self.run_spec.run_id, e.p, Path(self.out_dir)
        tr.save(e.translator, out / "translator", extra={"run_id": run_id, "step": restored_from})
        io.write_frame(out / "samples.parquet", pd.DataFrame(final_rows).assign(run_id=run_id))
        summary = {
            "run_id": run_id,
            "dataset": p.dataset,
            "dataset_kind": self.run_spec.kind,
            **self._results(trainer, final_rows, restored_from, train_s),
            "params": p.as_dict(),
            "provenance": provenance.collect(
                config_slice=self.config_slice,
                inputs=self.inputs,
                started=self.phases.started,
                run_id=run_id,
                extra={
                    "world_size": parallel.world_size(),
                    "training_segments": saving.segments(trainer.state),
                },
            ),
            "phases": self.phases.as_dict(),  # after provenance: its git call and fingerprints
        }
        io.write_json(out / "summary.json", summary)
        return summary

    def record_failure(self, trainer: loop.Trainer) -> None:
        """None: a run that kept no translator writes no outputs."""
        return None

    def _results(self, trainer: loop.Trainer, final_rows, restored_from, train_s) -> dict:
        """The summary's numbers: the curve and losses, peak and final accuracy, the run's
        length, size and throughput."""
        from ablate.bridge.evaluate import accuracy

        e, p, state, curve = self.entry, self.entry.p, trainer.state, self.recipe.evaluation.curve
        logged = [x for x in state.log_history if "loss" in x and _logs(p, x["step"])]
        final = accuracy(final_rows)
        peak = max(curve, key=lambda c: c["accuracy"])
        mean_prompt = sum(len(e.pair.prompt_ids(i)) for i in e.eval_items) / len(e.eval_items)
        return {
            "curve": curve,
            "losses": [_loss_entry(x) for x in logged],
            "peak": peak["accuracy"],
            "peak_step": peak["step"],
            "final": final["accuracy"],
            "final_em": final["em"],
            "final_f1": final["f1"],
            "degradation": peak["accuracy"] - final["accuracy"],
            "steps_done": state.step,
            "stop_reason": trainer.stop["reason"],
            "restored_from_step": restored_from,
            "resumed_from_step": trainer.resumed_from_step,
            "n_eval": len(e.eval_items),
            "n_train": len(e.train_items),
            "K": p.K,
            "mean_prompt_tokens": mean_prompt,
            "compression_ratio": mean_prompt / p.K,
            "translator_params": e.n_params,
            "wall_s": time.time() - self.phases.started,
            "train_s": train_s,
            "train_tokens": state.tokens_seen,
            "throughput": {
                "steps_per_s": state.step / max(train_s, 1e-9),
                "tokens_per_s": state.tokens_seen / max(train_s, 1e-9),
            },
            "world_size": parallel.world_size(),
            "global_batch": global_batch(p, len(e.train_items)),
            "source_states": "cached" if e.cached_source else "live",
            "teacher_states": "cached" if e.cached_teacher else "live",
        }
