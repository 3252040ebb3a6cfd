"""What watches the training loop's numbers: the stop rules (whether to stop), the pure step-time
throughput, the one-line progress (plain objects the loop calls, no callback interface;
:mod:`ablate.core.training.loop`)."""

from __future__ import annotations

import math
import statistics
import sys
import time
from typing import Any

import torch

from ablate.core.training.params import LoopParams

#: The key of a log history entry that records a study evaluation's stop (the loop's rules read
#: theirs from the logged losses); a resume replays both (:meth:`StopRules.replay`).
STOP = "stop"


def check_logged_stop(entry: dict[str, Any]) -> None:
    """A ``TypeError`` unless a log history entry's stop, where it has one, is of its step."""
    stop = entry.get(STOP)
    if STOP in entry and not (
        isinstance(stop, dict)
        and type(stop.get("reason")) is str
        and stop.get("step") == entry["step"]
        and isinstance(stop.get("detail"), dict)
    ):
        raise TypeError(f"a log_history stop that is not one of its step: {str(entry)[:60]}")


class StopRules:
    """Stop rules (docs/training.md, "Stop rules"), each recorded as ``{"reason", "step",
    "detail"}``; a resumed run rebuilds their state from its log history (:meth:`replay`)."""

    def __init__(self, params: LoopParams):
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

    def observe_train_loss(self, step: int, loss: float) -> dict | None:
        if not math.isfinite(loss):
            return self._set("nonfinite", step, {"what": "train_loss", "value": str(loss)})
        if self.first_loss is None:
            self.first_loss = loss
            return None
        n = self.p.no_learning_steps or 0
        if n and not self.no_learning_checked and step >= n:
            self.no_learning_checked = True
            gain = self.first_loss - loss
            if gain < self.p.no_learning_min_gain:
                return self._set(
                    "no_learning",
                    step,
                    dict(
                        first_loss=self.first_loss,
                        loss=loss,
                        gain=gain,
                        min_gain=self.p.no_learning_min_gain,
                        after_steps=n,
                    ),
                )
        return None

    def observe_eval_loss(self, step: int, loss: float) -> dict | None:
        if not math.isfinite(loss):
            return self._set("nonfinite", step, {"what": "eval_loss", "value": str(loss)})
        delta = self.p.plateau_min_delta or 0.0
        if self.best_eval is None or loss < self.best_eval - delta:
            self.best_eval, self.best_step, self.bad_evals = loss, step, 0
            return None
        self.bad_evals += 1
        patience = self.p.plateau_patience or 0
        if patience and self.bad_evals >= patience and step >= (self.p.plateau_min_steps or 0):
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
                    min_steps=self.p.plateau_min_steps or 0,
                ),
            )
        return None

    def observe_evaluation(self, stop: dict[str, Any] | None) -> dict[str, Any] | None:
        """A study evaluation's stop (None: none); returns the log entry that records it."""
        if stop is None:
            return None
        self._set(stop["reason"], stop["step"], stop["detail"])
        return {"step": stop["step"], STOP: stop}

    def _set(self, reason: str, step: int, detail: dict) -> dict:
        if self.stop is None:
            self.stop = {"reason": reason, "step": step, "detail": detail}
        return self.stop

    def watch_micro_loss(self, step: int, loss: torch.Tensor) -> None:
        """Each micro-batch's loss, kept on the device until :meth:`nonfinite`: reading it per
        micro-batch made the host wait for each backward."""
        self._micro.append((step, loss.detach()))

    def nonfinite(self) -> dict | None:
        """The stop for the first non-finite micro-batch loss since the last call (one device
        sync), or None."""
        micro, self._micro = self._micro, []
        if not micro:
            return None
        bad = ~torch.isfinite(torch.stack([loss for _, loss in micro]).float())
        if not bool(bad.any()):  # the one sync
            return None
        i = int(bad.nonzero()[0, 0])
        first = {"step": micro[i][0], "value": float(micro[i][1])}
        return self._set("nonfinite", first["step"], {"what": "train_loss", **first})

    def nonfinite_elsewhere(self, step: int) -> dict:
        """The stop of a process whose own losses were finite at ``step`` while another's were
        not."""
        return self._set("nonfinite", step, {"what": "train_loss", "process": "another"})

    def replay(self, log_history: list[dict]) -> dict | None:
        """Rebuild the rule state from a (resumed) log history; returns a stop it already implies."""
        self._reset()
        self.stop = None
        for entry in log_history:
            if "loss" in entry:
                self.observe_train_loss(entry["step"], entry["loss"])
            if "eval_loss" in entry:
                self.observe_eval_loss(entry["step"], entry["eval_loss"])
            if STOP in entry:
                self.observe_evaluation(entry[STOP])
        return self.stop


class Throughput:
    """Pure training-step time (no eval, no saving) and non-pad tokens since the (re)start."""

    def __init__(self):
        self.step_times: list[float] = []
        self.tokens = 0

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


class Progress:
    """One flushed line per log or evaluation (Snakemake logs read better than a tqdm bar)."""

    def __init__(self, label: str, throughput: Throughput, stream=None):
        self.label = label
        self.throughput = throughput
        self.stream = stream or sys.stdout
        self.t_start = time.perf_counter()
        self.step_start = 0

    def _print(self, msg: str):
        print(f"[{self.label}] {msg}", file=self.stream, flush=True)

    def begin(self, step: int, max_steps: int, how: str) -> None:
        """``how``: the batch and the device, in words."""
        self.t_start, self.step_start = time.perf_counter(), step
        where = f"resumed at step {step}" if step else "starting"
        self._print(f"{where}: max_steps {max_steps}, {how}")

    def log(self, step: int, max_steps: int, logs: dict[str, float]) -> None:
        done = step - self.step_start
        elapsed = time.perf_counter() - self.t_start
        rate = done / elapsed if elapsed > 0 and done else None
        eta = (max_steps - step) / rate if rate else None
        parts = [f"step {step}/{max_steps}"]
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
