"""Training of one grid entry: a translator between a frozen source and a frozen target.

Evaluated (bridged accuracy, greedy) at step 0, every ``eval_every`` steps and at the end; early
stopping on bridged accuracy with ``patience``; ``restore_best`` makes the final state the best
evaluated one, *re-evaluated* (final is measured, not copied). Writes ``out_dir/translator/``
(safetensors + config + hash manifest), ``out_dir/samples.parquet`` (per-sample rows of the final
evaluation, for paired tests) and, last, ``out_dir/summary.json``. A checkpoint at every
evaluation training goes on from lets a rerun resume there (:mod:`ablate.bridge.resume`).

Data-parallel under torchrun (:mod:`ablate.bridge.parallel`; the core's launcher,
``ablate.core.parallel.launch("ablate.bridge.train:train_entry", kwargs, N, threads)``):
``batch_size`` items per process and step (the seed's "10 per GPU"), each process a slice of
one global batch order, DDP averaging the gradients; the evaluation is split over the processes
and gathered; only rank 0 writes. On one process it is the plain loop. With ``states["source"]`` (a cache
folder of :mod:`ablate.bridge.states`) the source model's weights are not loaded at all; with
``states["teacher"]`` the KL term reads its teacher's rows instead of a target forward pass.
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

from ablate.bridge import models, parallel, resume, switches, world
from ablate.bridge import params as bridge_params
from ablate.bridge import states as frozen
from ablate.bridge import translator as tr
from ablate.bridge.pair import Pair, card_inputs, load_pair
from ablate.core import checkpoint, generation, io, provenance
from ablate.core.training import speed

#: Every parameter key with its default (read from the study's params.schema.yaml).
DEFAULTS: dict[str, Any] = bridge_params.defaults()


def optimizer(translator: tr.BottleneckedGatedTranslator, p: dict[str, Any]):
    from transformers import get_linear_schedule_with_warmup

    gates = {id(g) for g in translator.gate_parameters()}
    rest = [q for q in translator.parameters() if id(q) not in gates]
    opt = torch.optim.AdamW(
        [
            {"params": rest, "lr": p["lr"], "weight_decay": p["weight_decay"]},
            {
                "params": translator.gate_parameters(),
                "lr": p["lr"] * p["gate_lr_multiplier"],
                "weight_decay": 0.0,
            },
        ],
        betas=(0.9, 0.98),
        **speed.fp32_optimizer_kwargs(translator.parameters()),
    )
    return opt, get_linear_schedule_with_warmup(opt, p["warmup_steps"], p["steps"])


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


@dataclass
class Step:
    loss: float  # the global batch's loss (this process's on one process)
    parts: dict[str, float]
    tokens: int  # this process's tokens (source input + target input)
    grad_norm: float | None  # None: the loss was not finite and nothing was updated


def train_step(
    pair: Pair, model, opt, sched, items, step: int, grad_clip: float, states=None, teacher=None
):
    """One optimisation step of the translator ``model`` (DDP-wrapped or not) on ``items``.

    ``states`` = (source states [B, S, d_src], mask [B, S]) skips the source model, ``teacher``
    = the KL teacher's final states [B, n, d_tgt] at the first answer positions skips the teacher
    forward (cached, or the GPU benchmark's); without them the pair's caches or the live models
    are used. A non-finite loss updates nothing (the weights stay the last good ones)."""
    loss, parts, n_tok = pair.loss(model, items, step, states=states, teacher=teacher)
    value = parallel.mean_value(loss)
    if not torch.isfinite(torch.tensor(value)):
        return Step(value, parts, n_tok, None)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    sched.step()
    return Step(value, parts, n_tok, float(grad_norm))


def _say(*args, **kwargs) -> None:
    if parallel.rank() == 0:  # one progress log, not one per process
        print(*args, **kwargs, flush=True)


def global_batch(p: dict[str, Any], n_train: int) -> int:
    """Items per step over all processes: ``batch_size`` per process (the seed's per GPU)."""
    w = parallel.world_size()
    if w == 1:
        return min(p["batch_size"], n_train)
    if p["batch_size"] * w > n_train:
        raise bridge_params.BridgeConfigError(
            f"batch_size {p['batch_size']} x {w} processes exceeds the {n_train} training items"
        )
    return p["batch_size"] * w


class _Evaluations:
    """Every bridged evaluation of a run: the curve, the best state so far (for ``restore_best``)
    and the evaluations without improvement (early stopping's patience)."""

    def __init__(self, pair: Pair, translator, eval_items, p: dict[str, Any], label: str):
        self.pair, self.translator, self.eval_items = pair, translator, eval_items
        self.p, self.label = p, label
        self.curve: list[dict] = []
        self.best: dict[str, Any] = {"accuracy": -1.0}
        self.bad_evals = 0
        self.last_rows: list[dict] = []

    def rows(self) -> list[dict]:
        """Each process evaluates a share of the items, gathered in order."""
        return parallel.gather(
            _evaluate(self.pair, self.translator, parallel.shard(self.eval_items))
        )

    def __call__(self, at: int) -> bool:
        """Evaluate at step ``at``; True when early stopping says stop."""
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
        return patience is not None and self.bad_evals >= patience


def _log_step(label: str, step: int, p: dict[str, Any], out: Step, lr: float, t0: float) -> None:
    """One progress line: the loss and its parts, the gradient norm, the rate and the ETA."""
    rate = step / (time.time() - t0)
    _say(
        f"[{label}] step {step}/{p['steps']} loss {out.loss:.4f} "
        + " ".join(f"{k} {v:.4f}" for k, v in out.parts.items())
        + f" grad_norm {out.grad_norm:.3f} lr {lr:.2e}"
        f" {rate:.1f} steps/s ETA {(p['steps'] - step) / rate:.0f} s"
    )


def fit(pair: Pair, translator, train_items, eval_items, p, label: str) -> dict[str, Any]:
    """The training loop; returns the curve, the final rows and the stop facts."""
    model = parallel.wrap(translator)
    speed.tf32_matmuls(pair.device)
    pair.compiled = pair.device.type == "cuda"  # the target's layers, for the training forward
    opt, sched = optimizer(translator, p)
    evaluation = _Evaluations(pair, translator, eval_items, p, label)
    losses = []
    stop_reason, step = "max_steps", 0
    tokens, t0, resumed_from = 0, time.time(), None
    n_global = global_batch(p, len(train_items))
    per_process = n_global // parallel.world_size()
    batches = _batches(len(train_items), n_global, p["seed"])
    resumed = resume.restore(translator, opt, sched)
    if resumed is None:
        stop = evaluation(0)
    else:  # on from a checkpoint: the loop's state, the batch order replayed to its step
        loop, where = resumed
        step, tokens, losses, t0 = loop["step"], loop["tokens"], loop["losses"], t0 - loop["s"]
        for name in ("curve", "best", "bad_evals", "last_rows"):
            setattr(evaluation, name, loop[name])
        for _ in range(step):
            next(batches)
        stop, resumed_from = False, step
        _say(f"[{label}] resuming from {where} (step {step})")
    translator.train()
    while not stop and step < p["steps"]:
        step += 1
        mine = next(batches)[parallel.rank() * per_process :][:per_process]
        out = train_step(
            pair, model, opt, sched, [train_items[i] for i in mine], step, p["grad_clip"]
        )
        if out.grad_norm is None:  # before the update: the weights stay the last good ones
            stop_reason = "nonfinite_loss"
            step -= 1
            break
        tokens += parallel.total(out.tokens)
        if step % p["log_every"] == 0 or step == p["steps"]:
            losses.append({"step": step, "loss": out.loss, **out.parts})
            _log_step(label, step, p, out, sched.get_last_lr()[0], t0)
        if step % p["eval_every"] == 0 or step == p["steps"]:
            if evaluation(step) and step < p["steps"]:
                stop_reason = "early_stopping"
                break
            if step < p["steps"]:  # training goes on from here: what a rerun resumes from
                loop = {"step": step, "tokens": tokens, "losses": losses, "s": time.time() - t0}
                for name in ("curve", "best", "bad_evals", "last_rows"):
                    loop[name] = getattr(evaluation, name)
                resume.save(step, translator, opt, sched, loop)
    if evaluation.curve[-1]["step"] != step:  # ended between evaluations (non-finite loss)
        evaluation(step)
    train_s = time.time() - t0
    restored_from = None
    best = evaluation.best
    if p["restore_best"] and best.get("state") is not None:
        translator.load_state_dict(best["state"])
        restored_from = best["step"]
        final_rows = evaluation.rows()  # re-evaluated, not copied
    else:
        final_rows = evaluation.last_rows
    return {
        "curve": evaluation.curve,
        "losses": losses,
        "final_rows": final_rows,
        "steps_done": step,
        "stop_reason": stop_reason,
        "restored_from_step": restored_from,
        "resumed_from_step": resumed_from,
        "train_tokens": tokens,
        "train_s": train_s,
    }


@dataclass
class _Entry:
    """One grid entry set up to train: its resolved params, data, models and translator."""

    p: dict[str, Any]
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
    eval_items = world.load_dataset(eval_file, dataset_kind)[: p["eval_size"]]
    torch.manual_seed(p["seed"])
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
        f"translator {entry.n_params / 1e6:.3f} M params, K={p['K']}; "
        f"{parallel.world_size()} process(es); source states "
        + ("cached" if entry.cached_source else "live")
        + ", KL teacher "
        + ("cached" if entry.cached_teacher else "live")
    )
    return entry


def _results(e: _Entry, res: dict[str, Any], started: float) -> dict[str, Any]:
    """The summary's numbers: peak and final accuracy, the run's length, size and throughput."""
    from ablate.bridge.evaluate import accuracy

    p = e.p
    final = accuracy(res["final_rows"])
    peak = max(res["curve"], key=lambda c: c["accuracy"])
    prompt_tokens = [len(e.pair.prompt_ids(i)) for i in e.eval_items]
    mean_prompt = sum(prompt_tokens) / len(prompt_tokens)
    return {
        "curve": res["curve"],
        "losses": res["losses"],
        "peak": peak["accuracy"],
        "peak_step": peak["step"],
        "final": final["accuracy"],
        "final_em": final["em"],
        "final_f1": final["f1"],
        "degradation": peak["accuracy"] - final["accuracy"],
        "steps_done": res["steps_done"],
        "stop_reason": res["stop_reason"],
        "restored_from_step": res["restored_from_step"],
        "resumed_from_step": res["resumed_from_step"],
        "n_eval": len(e.eval_items),
        "n_train": len(e.train_items),
        "K": p["K"],
        "mean_prompt_tokens": mean_prompt,
        "compression_ratio": mean_prompt / p["K"],
        "translator_params": e.n_params,
        "wall_s": time.time() - started,
        "train_s": res["train_s"],
        "train_tokens": res["train_tokens"],
        "throughput": {
            "steps_per_s": res["steps_done"] / max(res["train_s"], 1e-9),
            "tokens_per_s": res["train_tokens"] / max(res["train_s"], 1e-9),
        },
        "world_size": parallel.world_size(),
        "global_batch": global_batch(p, len(e.train_items)),
        "source_states": "cached" if e.cached_source else "live",
        "teacher_states": "cached" if e.cached_teacher else "live",
    }


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
    and rank 0 alone writes (the others return the same summary, unwritten)."""
    started = time.time()
    states = dict(states or {})
    run_id, dataset_kind = spec.run_id, spec.kind
    models.check_pinned({"source": source_card, "target": target_card}, spec.identity)
    out = Path(out_dir)
    e = _set_up(spec, train_file, eval_file, (source_card, target_card), states)
    p = e.p
    key = {"run_id": run_id, "params": p, "world_size": parallel.world_size()}
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
    with resume.checkpointing(out / checkpoint.CHECKPOINTS_DIR, key, inputs):
        res = fit(e.pair, e.translator, e.train_items, e.eval_items, p, e.label)
    world_size = parallel.world_size()
    if parallel.rank() != 0:
        return {"run_id": run_id, "rank": parallel.rank(), "world_size": world_size, **res}
    tr.save(
        e.translator,
        out / "translator",
        extra={"run_id": run_id, "step": res["restored_from_step"]},
    )
    samples = pd.DataFrame(res["final_rows"]).assign(run_id=run_id)
    io.write_frame(out / "samples.parquet", samples)
    summary = {
        "run_id": run_id,
        "dataset": p["dataset"],
        "dataset_kind": dataset_kind,
        **_results(e, res, started),
        "params": p,
        "provenance": provenance.collect(
            config_slice=spec.record_slice(),
            inputs=inputs,
            started=started,
            run_id=run_id,
            extra={"world_size": world_size},
        ),
    }
    io.write_json(out / "summary.json", summary)
    _say(
        f"[{e.label}] done: peak {summary['peak']:.3f} at step {summary['peak_step']}, final "
        f"{summary['final']:.3f}, {res['steps_done']} steps ({res['stop_reason']}), "
        f"{summary['wall_s']:.1f} s"
    )
    return summary
