"""TrainerCallbacks: stop rules, pure step-time throughput, one-line progress."""

from __future__ import annotations

import math
import statistics
import sys
import time
from typing import Any

import torch
from transformers import TrainerCallback


class StopRules(TrainerCallback):
    """Stop rules, each recorded as ``{"reason", "step", "detail"}``.

    - ``no_learning``: at the first train-loss log at or after ``no_learning_steps``, the gain over
      the first logged loss is below ``no_learning_min_gain``.
    - ``plateau``: ``plateau_patience`` evaluations in a row without eval loss improving on the best
      by more than ``plateau_min_delta``, once ``global_step >= plateau_min_steps``.
    - ``nonfinite``: a non-finite train loss (every micro-batch's, read on the host only at a step
      that logs, evaluates, saves or ends training) or eval loss. Nothing is saved or evaluated
      after it; the caller restores the last complete checkpoint.

    State is rebuilt from ``state.log_history`` at train begin, so a resumed run continues the
    same patience counters and first loss.
    """

    def __init__(self, params: dict[str, Any]):
        self.p = params
        self.stop: dict[str, Any] | None = None
        self._reset()

    def _reset(self):
        self.first_loss: float | None = None
        self.no_learning_checked = False
        self.best_eval: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self._micro: list[tuple[int, torch.Tensor]] = []  # (step, loss) not yet read on the host

    # -- rule logic on plain numbers (unit-tested with fake logs)
    def observe_train_loss(self, step: int, loss: float) -> dict | None:
        if not math.isfinite(loss):
            return self._set("nonfinite", step, {"what": "train_loss", "value": str(loss)})
        if self.first_loss is None:
            self.first_loss = loss
            return None
        n = self.p.get("no_learning_steps") or 0
        if n and not self.no_learning_checked and step >= n:
            self.no_learning_checked = True
            gain = self.first_loss - loss
            if gain < self.p["no_learning_min_gain"]:
                return self._set(
                    "no_learning",
                    step,
                    dict(
                        first_loss=self.first_loss,
                        loss=loss,
                        gain=gain,
                        min_gain=self.p["no_learning_min_gain"],
                        after_steps=n,
                    ),
                )
        return None

    def observe_eval_loss(self, step: int, loss: float) -> dict | None:
        if not math.isfinite(loss):
            return self._set("nonfinite", step, {"what": "eval_loss", "value": str(loss)})
        delta = self.p.get("plateau_min_delta") or 0.0
        if self.best_eval is None or loss < self.best_eval - delta:
            self.best_eval, self.best_step, self.bad_evals = loss, step, 0
            return None
        self.bad_evals += 1
        patience = self.p.get("plateau_patience") or 0
        if (
            patience
            and self.bad_evals >= patience
            and step >= (self.p.get("plateau_min_steps") or 0)
        ):
            return self._set(
                "plateau",
                step,
                dict(
                    best_eval_loss=self.best_eval,
                    best_step=self.best_step,
                    eval_loss=loss,
                    evals_without_improvement=self.bad_evals,
                    patience=patience,
                    min_delta=delta,
                    min_steps=self.p.get("plateau_min_steps") or 0,
                ),
            )
        return None

    def _set(self, reason: str, step: int, detail: dict) -> dict:
        if self.stop is None:
            self.stop = {"reason": reason, "step": step, "detail": detail}
        return self.stop

    def watch_micro_loss(self, step: int, loss: torch.Tensor) -> None:
        """Called by the trainer for each micro-batch loss, kept on the device until a step that
        needs it (:meth:`on_step_end`): reading it per micro-batch (as the Trainer's NaN filter,
        turned off, did) made the host wait for each backward before it queued the optimizer."""
        self._micro.append((step, loss.detach()))

    def _first_nonfinite(self) -> dict | None:
        micro, self._micro = self._micro, []
        bad = ~torch.isfinite(torch.stack([loss for _, loss in micro]).float())
        if not bool(bad.any()):  # the one sync
            return None
        i = int(bad.nonzero()[0, 0])
        return {"step": micro[i][0], "value": float(micro[i][1])}

    def replay(self, log_history: list[dict]) -> dict | None:
        """Rebuild the rule state from a (resumed) log history; returns a stop it already implies."""
        self._reset()
        self.stop = None
        for entry in log_history:
            if "loss" in entry:
                self.observe_train_loss(entry["step"], entry["loss"])
            if "eval_loss" in entry:
                self.observe_eval_loss(entry["step"], entry["eval_loss"])
        return self.stop

    # -- Trainer hooks
    def on_train_begin(self, args, state, control, **kw):
        # train_run checks a resumed history for a stop before training; here only the counters matter
        self.replay(state.log_history)
        self.stop = None

    def on_step_end(self, args, state, control, **kw):
        # read before anything is logged, evaluated or saved, and at the end (the flow callback,
        # which sets these, runs first); other steps queue the next one without waiting
        wanted = control.should_log or control.should_evaluate or control.should_save
        if not self._micro or not (wanted or control.should_training_stop):
            return
        first = self._first_nonfinite()
        if first is not None:
            self._set("nonfinite", first["step"], {"what": "train_loss", **first})
            # never save or evaluate weights that took a non-finite update
            control.should_save = control.should_evaluate = control.should_log = False
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs and self.stop is None:
            if self.observe_train_loss(state.global_step, float(logs["loss"])):
                control.should_training_stop = True

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        if metrics and "eval_loss" in metrics and self.stop is None:
            if self.observe_eval_loss(state.global_step, float(metrics["eval_loss"])):
                control.should_training_stop = True
                if self.stop["reason"] == "nonfinite":
                    control.should_save = False


class Throughput(TrainerCallback):
    """Pure training-step time (on_step_begin -> on_step_end: no eval, no saving) and non-pad tokens.

    Tokens are the Trainer's ``num_input_tokens_seen`` since training began, read when asked: the
    core Trainer adds to it without a GPU sync per micro-batch and brings it up to date before
    every log and at the end (``CoreTrainer._track_num_input_tokens``)."""

    def __init__(self):
        self.step_times: list[float] = []
        self._t0 = None
        self._state = None
        self._tok_begin = 0

    @property
    def tokens(self) -> int:
        return self._state.num_input_tokens_seen - self._tok_begin if self._state else 0

    def on_train_begin(self, args, state, control, **kw):
        self._state, self._tok_begin = state, state.num_input_tokens_seen

    def on_step_begin(self, args, state, control, **kw):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if self._t0 is not None:
            self.step_times.append(time.perf_counter() - self._t0)
            self._t0 = None

    def summary(self, skip_first: int = 1) -> dict[str, Any]:
        """Rates over the timed steps, skipping the first (allocator warm-up, kernel selection)."""
        times = (
            self.step_times[skip_first:] if len(self.step_times) > skip_first else self.step_times
        )
        total = sum(times)
        frac = total / sum(self.step_times) if self.step_times else 0.0
        return dict(
            steps_timed=len(times),
            s_per_step_mean=total / len(times) if times else None,
            s_per_step_median=statistics.median(times) if times else None,
            train_steps_per_s=len(times) / total if total else None,
            # tokens of the skipped steps are removed in proportion to their time share
            train_tokens_per_s=self.tokens * frac / total if total else None,
            tokens=self.tokens,
        )


class Progress(TrainerCallback):
    """One flushed line per log/eval event (Snakemake logs read better than a tqdm bar).

    Also forces a log at the last step, so the loss curve always ends at the final step.
    """

    def __init__(self, label: str, throughput: Throughput, stream=None):
        self.label = label
        self.throughput = throughput
        self.stream = stream or sys.stdout
        self.t_start = time.perf_counter()
        self.step_start = 0

    def _print(self, msg: str):
        print(f"[{self.label}] {msg}", file=self.stream, flush=True)

    def on_train_begin(self, args, state, control, **kw):
        self.t_start, self.step_start = time.perf_counter(), state.global_step
        where = f"resumed at step {state.global_step}" if state.global_step else "starting"
        self._print(
            f"{where}: max_steps {state.max_steps}, batch {args.per_device_train_batch_size} "
            f"x grad_accum {args.gradient_accumulation_steps}, device {args.device}"
        )

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= state.max_steps:
            control.should_log = True

    def on_log(self, args, state, control, logs=None, **kw):
        if not logs:
            return
        done = state.global_step - self.step_start
        elapsed = time.perf_counter() - self.t_start
        rate = done / elapsed if elapsed > 0 and done else None
        eta = (state.max_steps - state.global_step) / rate if rate else None
        parts = [f"step {state.global_step}/{state.max_steps}"]
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
            if key in logs:
                parts.append(f"{key} {logs[key]:.4g}")
        if rate and "loss" in logs:
            tp = self.throughput.summary(skip_first=0)
            parts.append(f"{1 / rate:.2f} s/step")
            if tp["train_tokens_per_s"]:
                parts.append(f"{tp['train_tokens_per_s']:.0f} tok/s")
            parts.append(f"ETA {eta / 60:.1f} min")
        self._print(", ".join(parts))
