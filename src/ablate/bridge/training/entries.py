"""Training of one grid entry: a translator between a frozen source and a frozen target.

The core's driver runs the core's loop on the bridge's recipe as a :class:`TranslatorRun`, whose
outputs are the bridge's (docs/bridge.md, "Optimisation and evaluation").
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablate.bridge import models, world
from ablate.bridge import params as bridge_params
from ablate.bridge import states as frozen
from ablate.bridge import translator as tr
from ablate.bridge.evaluate import accuracy
from ablate.bridge.pair import Pair, card_inputs, load_pair
from ablate.bridge.params import BridgeParams
from ablate.bridge.training.recipe import Evaluations, global_batch, say, translator_trainer
from ablate.core.execution import parallel
from ablate.core.outputs import checkpoint_integrity, io, provenance
from ablate.core.outputs.phases import Phases
from ablate.core.training import driver, loop, saving, speed

#: a frozen model's outputs: read from its cache, or computed live
_HELD = {True: "cached", False: "live"}


def _logs(p: BridgeParams, step: int) -> bool:
    """A step of the loss curve: every ``log_every`` and the last (the loop also logs step 1)."""
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
    """Check the params, read the data, load the pair and build the translator, seeded."""
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
    say(
        f"[{entry.label}] {len(train_items)} train / {len(eval_items)} eval items ({dataset_kind}); "
        f"translator {entry.n_params / 1e6:.3f} M params, K={p.K}; "
        f"{parallel.world_size()} process(es); source states {_HELD[entry.cached_source]}, "
        f"KL teacher {_HELD[entry.cached_teacher]}"
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
    """Train and evaluate one grid entry; rank 0 writes translator/, samples.parquet, summary.json.
    ``states``: ``source`` / ``teacher`` -> a cache folder read instead of that forward pass."""
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
    summary = driver.drive(run, trainer)
    if parallel.rank() != 0:
        return {"run_id": run_id, "world_size": parallel.world_size(), **summary}
    say(
        f"[{e.label}] done: peak {summary['peak']:.3f} at step {summary['peak_step']}, final "
        f"{summary['final']:.3f}, {summary['steps_done']} steps ({summary['stop_reason']}), "
        f"{summary['wall_s']:.1f} s"
    )
    return summary


@dataclass(frozen=True, kw_only=True)
class TranslatorRun(driver.TrainRun):
    """A grid entry's run as the core's driver takes it, with the bridge's outputs."""

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
            "source_states": _HELD[e.cached_source],
            "teacher_states": _HELD[e.cached_teacher],
        }
