"""Full-weight training under a mask policy on the HF Trainer: SFT (stages 3/5) and the tiny model's pretraining.

Two entry points share one Trainer subclass, the callbacks and the saving code:

- :func:`finetune`: instruction/response pairs, loss on response tokens only, every forward built by
  ``masks.policy_forward_kwargs`` (so ``prefix_bidir`` trains a real prefix-LM), a leakage gate
  before the first step, eval loss on held-out pairs.
- :func:`pretrain`: the embedded tiny model's causal pretraining on a text corpus (packed into
  ``max_seq_len`` blocks, loss on every token), starting from a fresh tiny Ministral-3.

The Trainer already does grad accumulation, schedules, adafactor, bf16, gradient checkpointing,
eval, save/resume and RNG restore; this module adds only what it lacks: the policy forward with
logits computed at labelled positions only, stop rules (:class:`StopRules`), checkpoints that are
complete-or-ignored (a marker written last) plus a ``state_dict`` fallback when
``save_pretrained`` fails, an atomic final directory with a hash manifest, and ``summary.json``.
Parameters and their defaults: :data:`FINETUNE_DEFAULTS`, :data:`PRETRAIN_DEFAULTS` (docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback, TrainerState, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from maskablate import checkpoint, masks, provenance, sft_data

IGNORE_INDEX = -100
CHECKPOINT_MARKER = "checkpoint_complete.json"  # written last into every Trainer checkpoint
RUN_KEY_FILE = "run_key.json"  # identifies the run the intermediate checkpoints belong to
FORMAT_SAVE_PRETRAINED = "save_pretrained"
FORMAT_FALLBACK = "state_dict_fallback"

#: SFT hyperparameters; defaults are the seed study's (stage 3), plateau defaults its stage 5.
FINETUNE_DEFAULTS: dict[str, Any] = dict(
    learning_rate=2e-5,
    weight_decay=0.1,
    warmup_ratio=0.03,
    lr_scheduler="cosine",
    optim="adafactor",
    max_grad_norm=1.0,
    bf16="auto",  # bf16 compute: True on a bf16-capable GPU, else False
    model_dtype="auto",  # dtype of the model's weights: bfloat16 when bf16 is on, else float32
    master_weights="auto",  # fp32 master weights + fp32 grad accumulation in the optimizer for 16-bit weights
    save_dtype="auto",  # final checkpoint dtype: bfloat16 when bf16 is on, else float32
    attn_implementation="sdpa",
    max_seq_len=1024,
    batch_size=1,
    grad_accum=16,
    max_steps=1200,
    eval_size=200,  # held-out pairs (split by seed); 0 disables eval
    eval_steps=100,
    eval_batch_size=8,
    save_steps=100,
    save_total_limit=2,
    logging_steps=10,
    gradient_checkpointing=False,
    seed=0,
    # stop rules (0 / null disables a rule)
    no_learning_steps=200,
    no_learning_min_gain=0.01,
    plateau_patience=8,
    plateau_min_delta=0.001,
    plateau_min_steps=3000,
    # leakage gate
    probe_size=64,
    probe_threshold=None,  # None: maskablate.leakage.DEFAULT_THRESHOLD
    probe_batch_size=8,
    keep_checkpoints=False,  # keep out_dir/checkpoints after the final save
)

#: Causal pretraining of the embedded tiny model (the embedded config overrides these).
PRETRAIN_DEFAULTS: dict[str, Any] = {
    **{
        k: v
        for k, v in FINETUNE_DEFAULTS.items()
        if not k.startswith("probe_")
    },
    **dict(
        learning_rate=1e-3,
        weight_decay=0.01,
        warmup_ratio=0.05,
        optim="adamw_torch",
        max_seq_len=256,
        batch_size=8,
        grad_accum=1,
        max_steps=1000,
        eval_size=8,  # held-out packed blocks
        no_learning_steps=0,
        plateau_patience=0,
    ),
}


class TrainingError(RuntimeError):
    pass


class TrainingConfigError(TrainingError, ValueError):
    pass


class LeakageGateError(TrainingError):
    pass


# ---------------------------------------------------------------- parameters


def resolve_params(params: dict | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``params``; an unknown key is an error (a typo must not be ignored)."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise TrainingConfigError(
            f"unknown training parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(defaults))}"
        )
    out = {**defaults, **params}
    for key in ("max_steps", "batch_size", "grad_accum", "max_seq_len", "logging_steps"):
        if not isinstance(out[key], int) or out[key] < 1:
            raise TrainingConfigError(f"training parameter {key} must be an integer >= 1, got {out[key]!r}")
    for key in ("eval_size", "eval_steps", "save_steps", "no_learning_steps", "plateau_patience"):
        if out.get(key) is not None and (not isinstance(out[key], int) or out[key] < 0):
            raise TrainingConfigError(f"training parameter {key} must be an integer >= 0, got {out[key]!r}")
    return out


def _bf16_enabled(setting: Any) -> bool:
    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(setting)


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise TrainingConfigError(f"{name!r} is not a torch dtype (e.g. float32, bfloat16)")
    return dtype


def _model_dtype(p: dict[str, Any]) -> torch.dtype:
    if p["model_dtype"] == "auto":
        return torch.bfloat16 if _bf16_enabled(p["bf16"]) else torch.float32
    return _dtype(p["model_dtype"])


def _master_weights(p: dict[str, Any]) -> bool:
    if p["master_weights"] == "auto":
        return _model_dtype(p).itemsize < 4
    return bool(p["master_weights"])


def _save_dtype(p: dict[str, Any]) -> torch.dtype:
    if p["save_dtype"] == "auto":
        return torch.bfloat16 if _bf16_enabled(p["bf16"]) else torch.float32
    return _dtype(p["save_dtype"])


# ---------------------------------------------------------------- data


class ExampleDataset(torch.utils.data.Dataset):
    """Tokenized examples: ``{"input_ids": [...], "prompt_length": n}``; labels come from the collator."""

    def __init__(self, examples: list[dict[str, Any]]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.examples[i]


def sft_examples(pairs: list[sft_data.TokenizedPair]) -> ExampleDataset:
    return ExampleDataset(
        [{"input_ids": p.input_ids, "prompt_length": p.prompt_length} for p in pairs]
    )


class PolicyCollator:
    """Right-pads a batch; labels are -100 on the first ``prompt_length`` tokens and on pads.

    ``prompt_lengths`` travels with the batch (``remove_unused_columns=False``) because the
    ``prefix_bidir`` mask needs it. Pretraining examples have ``prompt_length`` 0: loss everywhere.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(ex["input_ids"]) for ex in batch)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        n = len(batch)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        prompt_lengths = torch.zeros(n, dtype=torch.long)
        for i, ex in enumerate(batch):
            ids = torch.as_tensor(ex["input_ids"], dtype=torch.long)
            k, pl = len(ids), int(ex["prompt_length"])
            input_ids[i, :k] = ids
            attention_mask[i, :k] = 1
            labels[i, pl:k] = ids[pl:]
            prompt_lengths[i] = pl
        return dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            prompt_lengths=prompt_lengths,
        )


def load_corpus(corpus: str | os.PathLike) -> list[str]:
    """Documents of a pretraining corpus: ``.jsonl`` rows with a ``text`` field, or one per line of a text file."""
    path = Path(corpus)
    if not path.exists():
        raise TrainingConfigError(f"pretraining corpus {path} does not exist")
    if path.suffix == ".jsonl":
        docs = []
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if "text" not in row:
                    raise TrainingConfigError(
                        f"pretraining corpus {path} line {n} lacks column 'text' (has: {', '.join(sorted(row))})"
                    )
                docs.append(str(row["text"]))
    else:
        docs = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not docs:
        raise TrainingConfigError(f"pretraining corpus {path} holds no documents")
    return docs


def pack_corpus(tokenizer, docs: list[str], seq_len: int) -> list[list[int]]:
    """Concatenate BOS + doc + EOS token streams and cut them into full ``seq_len`` blocks."""
    stream: list[int] = []
    for ids in tokenizer(docs, add_special_tokens=True)["input_ids"]:
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
    blocks = [stream[i : i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]
    if not blocks:
        raise TrainingConfigError(
            f"the corpus has {len(stream)} tokens: fewer than one block of max_seq_len={seq_len}"
        )
    return blocks


# ---------------------------------------------------------------- loss


def _fast_head_ok(model) -> bool:
    """Logits only at labelled positions is exact for a plain decoder + linear head (no softcapping)."""
    config = getattr(model, "config", None)
    return (
        hasattr(model, "get_decoder")
        and model.get_decoder() is not None
        and isinstance(model.get_output_embeddings(), torch.nn.Linear)
        and not getattr(config, "final_logit_softcapping", None)
        and getattr(config, "logit_scale", None) in (None, 1.0)
    )


def policy_loss_sum(
    model, batch: dict[str, torch.Tensor], policy: str, *, fast_head: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of next-token CE over labelled positions, number of labelled positions) under ``policy``.

    With ``fast_head`` the decoder body runs once and the lm_head only at positions whose shifted
    label is not -100: with a 131k vocab and response-only SFT labels this is most of the lm_head
    cost saved, and the result equals the model's own loss (tests/test_training.py).
    """
    labels = batch["labels"][:, 1:]
    kw = masks.policy_forward_kwargs(
        model, batch["input_ids"], batch["attention_mask"], batch.get("prompt_lengths"), policy
    )
    keep = labels != IGNORE_INDEX
    if fast_head and _fast_head_ok(model):
        hidden = model.get_decoder()(**kw, use_cache=False).last_hidden_state[:, :-1]
        logits = model.get_output_embeddings()(hidden[keep])
        targets = labels[keep]
    else:
        logits = model(**kw, use_cache=False).logits[:, :-1].flatten(0, 1)
        targets = labels.flatten()
    loss_sum = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss_sum, keep.sum()


# ---------------------------------------------------------------- callbacks


class StopRules(TrainerCallback):
    """Stop rules, each recorded as ``{"reason", "step", "detail"}``.

    - ``no_learning``: at the first train-loss log at or after ``no_learning_steps``, the gain over
      the first logged loss is below ``no_learning_min_gain``.
    - ``plateau``: ``plateau_patience`` evaluations in a row without eval loss improving on the best
      by more than ``plateau_min_delta``, once ``global_step >= plateau_min_steps``.
    - ``nonfinite``: a non-finite train loss (seen per micro-batch, before the Trainer's NaN filter
      hides it from the logs) or eval loss. Saving is cancelled for that step; the caller restores
      the last complete checkpoint.

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
        self._pending_nonfinite: dict[str, Any] | None = None

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
                    dict(first_loss=self.first_loss, loss=loss, gain=gain,
                         min_gain=self.p["no_learning_min_gain"], after_steps=n),
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
        if patience and self.bad_evals >= patience and step >= (self.p.get("plateau_min_steps") or 0):
            return self._set(
                "plateau",
                step,
                dict(best_eval_loss=self.best_eval, best_step=self.best_step, eval_loss=loss,
                     evals_without_improvement=self.bad_evals, patience=patience, min_delta=delta,
                     min_steps=self.p.get("plateau_min_steps") or 0),
            )
        return None

    def _set(self, reason: str, step: int, detail: dict) -> dict:
        if self.stop is None:
            self.stop = {"reason": reason, "step": step, "detail": detail}
        return self.stop

    def flag_nonfinite_micro_loss(self, step: int, value: float) -> None:
        """Called by the trainer for each micro-batch loss; acted on at the end of the step."""
        if self._pending_nonfinite is None:
            self._pending_nonfinite = {"step": step, "value": value}

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
        # _run checks a resumed history for a stop before training; here only the counters matter
        self.replay(state.log_history)
        self.stop = None

    def on_step_end(self, args, state, control, **kw):
        if self._pending_nonfinite is not None:
            self._set("nonfinite", state.global_step, {"what": "train_loss", **self._pending_nonfinite})
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
    """Pure training-step time (on_step_begin -> on_step_end: no eval, no saving) and non-pad tokens."""

    def __init__(self):
        self.step_times: list[float] = []
        self.tokens = 0
        self._t0 = self._tok0 = None

    def on_step_begin(self, args, state, control, **kw):
        self._t0, self._tok0 = time.perf_counter(), state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kw):
        if self._t0 is not None:
            self.step_times.append(time.perf_counter() - self._t0)
            self.tokens += state.num_input_tokens_seen - self._tok0
            self._t0 = None

    def summary(self, skip_first: int = 1) -> dict[str, Any]:
        """Rates over the timed steps, skipping the first (allocator warm-up, kernel selection)."""
        times = self.step_times[skip_first:] if len(self.step_times) > skip_first else self.step_times
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
        self._print(f"{where}: max_steps {state.max_steps}, batch {args.per_device_train_batch_size} "
                    f"x grad_accum {args.gradient_accumulation_steps}, device {args.device}")

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


# ---------------------------------------------------------------- optimizer


class MasterWeightsOptimizer(torch.optim.Optimizer):
    """Any torch optimizer run on fp32 master copies of 16-bit model weights.

    bf16 weights make the forward/backward 2.2x faster than bf16 autocast over fp32 weights on an
    H200 (docs/benchmarks.md), but a bf16 weight cannot take a 2e-5 x O(1) update (its spacing near
    0.02 is ~1e-4): the update rounds away. So the optimizer keeps fp32 masters, the backward
    accumulates each gradient into the master's fp32 ``.grad`` (a post-accumulate hook, which also
    frees the 16-bit grad), the inner optimizer steps the masters, and the weights are copied back.
    Numerically this is fp32-master mixed precision; the 16-bit weights are only a cache.
    Its state_dict carries the masters, so a resumed run continues bit-for-bit.
    """

    def __init__(self, param_groups: list[dict], inner_cls, inner_kwargs: dict):
        self.model_params: list[torch.nn.Parameter] = []
        self.master_params: list[torch.Tensor] = []
        self._hooks = []
        master_groups = []
        for group in param_groups:
            masters = []
            for p in group["params"]:
                m = p.detach().float().clone()
                self.model_params.append(p)
                self.master_params.append(m)
                masters.append(m)
                self._hooks.append(p.register_post_accumulate_grad_hook(self._hook(m)))
            master_groups.append({**group, "params": masters})
        self.inner = inner_cls(master_groups, **inner_kwargs)
        # the attributes torch's Optimizer API (LR schedulers, accelerate) reads
        self.defaults = self.inner.defaults
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}
        self._optimizer_state_dict_pre_hooks = {}
        self._optimizer_state_dict_post_hooks = {}
        self._optimizer_load_state_dict_pre_hooks = {}
        self._optimizer_load_state_dict_post_hooks = {}

    @staticmethod
    def _hook(master: torch.Tensor):
        def accumulate(p: torch.Tensor) -> None:
            g = p.grad.to(torch.float32)
            if master.grad is None:
                master.grad = g
            else:
                master.grad.add_(g)
            p.grad = None

        return accumulate

    @property
    def param_groups(self):
        return self.inner.param_groups

    @property
    def state(self):
        return self.inner.state

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.inner.step(closure)
        torch._foreach_copy_(self.model_params, self.master_params)
        # the Trainer only calls model.zero_grad(), which cannot see the masters' grads
        for m in self.master_params:
            m.grad = None
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for t in (*self.master_params, *self.model_params):
            t.grad = None

    def remove_hooks(self) -> None:
        """Detach from the model (before another optimizer is built on the same parameters)."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    @torch.no_grad()
    def sync_master_from_model(self) -> None:
        torch._foreach_copy_(self.master_params, self.model_params)

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict(), "master": list(self.master_params)}

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict) -> None:
        self.inner.load_state_dict(state_dict["inner"])
        torch._foreach_copy_(self.master_params, [t.to(m.device) for t, m in
                                                  zip(state_dict["master"], self.master_params, strict=True)])
        torch._foreach_copy_(self.model_params, self.master_params)


# ---------------------------------------------------------------- trainer


class MaskPolicyTrainer(Trainer):
    """HF Trainer whose forward obeys a mask policy; adds fallback saving and complete-marked checkpoints."""

    def __init__(self, *args, policy: str, stop_rules: StopRules | None = None,
                 fast_head: bool = True, master_weights: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy = masks.check_policy(policy)
        self.stop_rules = stop_rules
        self.fast_head = fast_head
        self.master_weights = master_weights
        self.last_save_format: str | None = None

    @property
    def master_optimizer(self) -> MasterWeightsOptimizer | None:
        opt = getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate wraps it
        return opt if isinstance(opt, MasterWeightsOptimizer) else None

    def create_optimizer(self, model=None):
        if not self.master_weights or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        decay = set(self.get_decay_parameter_names(model))
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if n in decay], "weight_decay": self.args.weight_decay},
            {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
        ]
        self.optimizer = MasterWeightsOptimizer([g for g in groups if g["params"]], cls, kwargs)
        return self.optimizer

    def _clip_grad_norm(self, model):
        master = self.master_optimizer
        if master is None:
            return super()._clip_grad_norm(model)
        # the gradients live on the fp32 masters (the 16-bit ones are freed by the hooks)
        grads = [m for m in master.master_params if m.grad is not None]
        return torch.nn.utils.clip_grad_norm_(grads, self.args.max_grad_norm)

    def export_weights(self, dtype: torch.dtype) -> None:
        """Cast the model to ``dtype`` for saving; with master weights, take the fp32 values from them."""
        model = self.accelerator.unwrap_model(self.model)
        if model.dtype != dtype:
            model.to(dtype)
        if self.master_optimizer is not None:
            with torch.no_grad():
                torch._foreach_copy_(self.master_optimizer.model_params, self.master_optimizer.master_params)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        unwrapped = self.accelerator.unwrap_model(model)
        # A wrapper (DDP, DataParallel) must see the forward for its hooks: fast head on bare models only.
        target = unwrapped if unwrapped is model else model
        loss_sum, n = policy_loss_sum(
            target, inputs, self.policy, fast_head=self.fast_head and unwrapped is model
        )
        if num_items_in_batch is not None:
            # normalised over the whole accumulated batch: the Trainer then skips its GA division
            loss = loss_sum / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        else:
            loss = loss_sum / n.clamp(min=1)
        return (loss, {"loss": loss}) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.stop_rules is not None and not torch.isfinite(loss):
            self.stop_rules.flag_nonfinite_micro_loss(self.state.global_step + 1, float(loss))
        return loss

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """save_pretrained, or, when it raises, the state_dict fallback (the seed hit a conversion error)."""
        output_dir = output_dir or self.args.output_dir
        try:
            super()._save(output_dir, state_dict=state_dict)
            self.last_save_format = FORMAT_SAVE_PRETRAINED
        except Exception as exc:  # any failure of the model's own serializer
            print(f"[save] save_pretrained failed ({type(exc).__name__}: {exc}); "
                  f"writing the state_dict fallback to {output_dir}", file=sys.stderr, flush=True)
            save_state_dict_fallback(self.accelerator.unwrap_model(self.model), output_dir,
                                     tokenizer=self.processing_class)
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))
            self.last_save_format = FORMAT_FALLBACK

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        # Written last: a checkpoint without it was cut off mid-save and is never resumed from.
        ckpt = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        _atomic_write_json(ckpt / CHECKPOINT_MARKER,
                           {"step": self.state.global_step, "format": self.last_save_format})


def build_trainer(
    *,
    model,
    tokenizer,
    train_dataset,
    eval_dataset,
    policy: str,
    params: dict[str, Any],
    output_dir: str | os.PathLike,
    label: str,
    extra_callbacks: list[TrainerCallback] | None = None,
    pad_token_id: int | None = None,
    save: bool = True,
) -> tuple[MaskPolicyTrainer, StopRules, Throughput]:
    """The Trainer every entry point (and bench/bench_finetune.py) uses; ``params`` are resolved params.

    ``tokenizer`` may be None when ``pad_token_id`` is given (the benchmark); ``save=False`` turns
    intermediate checkpoints off.
    """
    p = params
    if pad_token_id is None:
        pad_token_id = tokenizer.pad_token_id
    do_eval = eval_dataset is not None and len(eval_dataset) > 0 and p["eval_steps"] > 0
    save_steps = p["save_steps"] or p["max_steps"]
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=p["max_steps"],
        per_device_train_batch_size=p["batch_size"],
        per_device_eval_batch_size=p["eval_batch_size"],
        gradient_accumulation_steps=p["grad_accum"],
        learning_rate=p["learning_rate"],
        weight_decay=p["weight_decay"],
        warmup_steps=p["warmup_ratio"],  # a float in [0, 1) is a ratio of max_steps (transformers 5)
        lr_scheduler_type=p["lr_scheduler"],
        optim=p["optim"],
        max_grad_norm=p["max_grad_norm"],
        bf16=_bf16_enabled(p["bf16"]),
        activation_checkpointing=p["gradient_checkpointing"],
        activation_checkpointing_kwargs={"use_reentrant": False} if p["gradient_checkpointing"] else None,
        eval_strategy="steps" if do_eval else "no",
        eval_steps=p["eval_steps"] if do_eval else None,
        save_strategy="steps" if save else "no",
        save_steps=save_steps,
        save_total_limit=p["save_total_limit"],
        logging_strategy="steps",
        logging_steps=p["logging_steps"],
        logging_first_step=True,  # the no-learning rule's reference loss
        seed=p["seed"],
        remove_unused_columns=False,  # prompt_lengths must reach compute_loss
        prediction_loss_only=True,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,  # Progress prints one line per log instead
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
    )
    stop_rules = StopRules(p)
    throughput = Throughput()
    callbacks = [stop_rules, throughput, Progress(label, throughput), *(extra_callbacks or [])]
    trainer = MaskPolicyTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if do_eval else None,
        data_collator=PolicyCollator(pad_token_id),
        processing_class=tokenizer,
        callbacks=callbacks,
        policy=policy,
        stop_rules=stop_rules,
        master_weights=_master_weights(p),
    )
    trainer.remove_callback(PrinterCallback)  # Progress already prints each log, readably
    return trainer, stop_rules, throughput


# ---------------------------------------------------------------- saving


def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def save_state_dict_fallback(model, out_dir: str | os.PathLike, tokenizer=None) -> None:
    """``model.safetensors`` from the state dict (tied weights stored once), config.json, tokenizer."""
    from safetensors.torch import save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(out)
    if getattr(model, "generation_config", None) is not None:
        try:
            model.generation_config.save_pretrained(out)
        except Exception:  # generation config is optional for loading
            pass
    if tokenizer is not None:
        tokenizer.save_pretrained(out)


def verify_loadable(model, path: str | os.PathLike) -> None:
    """Reload ``path`` with the eval stage's loader and compare every tensor with ``model``."""
    from maskablate.modeling import load_causal_lm

    reloaded = load_causal_lm(path, dtype=model.dtype, verify=False)
    want, got = model.state_dict(), reloaded.state_dict()
    if set(want) != set(got):
        raise TrainingError(
            f"checkpoint {path} reloads with different keys: missing "
            f"{sorted(set(want) - set(got))[:5]}, unexpected {sorted(set(got) - set(want))[:5]}"
        )
    for k, v in want.items():
        if not torch.equal(v.detach().cpu(), got[k].detach().cpu()):
            raise TrainingError(f"checkpoint {path}: tensor {k} differs from the trained model after reload")


def save_final(trainer: MaskPolicyTrainer, out_dir: Path, *, dtype: torch.dtype, extra: dict) -> dict:
    """Write ``out_dir/final`` atomically: save to final.tmp, verify a fallback, rename, then the manifest."""
    final, tmp = out_dir / "final", out_dir / "final.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model = trainer.accelerator.unwrap_model(trainer.model)
    trainer.export_weights(dtype)
    trainer.save_model(str(tmp))
    fmt = trainer.last_save_format
    if fmt == FORMAT_FALLBACK:
        verify_loadable(model, tmp)
    (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; nothing downstream reads it
    if final.exists():
        old = out_dir / "final.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    checkpoint.write_manifest(final, extra={"format": fmt, "dtype": str(dtype).removeprefix("torch."), **extra})
    return {"path": str(final), "format": fmt, "dtype": str(dtype).removeprefix("torch.")}


# ---------------------------------------------------------------- resume


def complete_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoints carrying the completion marker, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [
        d for d in ckpt_dir.glob("checkpoint-*")
        if d.is_dir() and (d / CHECKPOINT_MARKER).exists() and d.name.split("-")[-1].isdigit()
    ]
    return sorted(found, key=lambda d: int(d.name.split("-")[-1]))


def prepare_resume(ckpt_dir: Path, run_key: dict[str, Any]) -> Path | None:
    """Last complete checkpoint of the same run, or None. Incomplete or foreign checkpoints are removed."""
    key_file = ckpt_dir / RUN_KEY_FILE
    if ckpt_dir.is_dir():
        old_key = json.loads(key_file.read_text()) if key_file.exists() else None
        if old_key != json.loads(json.dumps(run_key, default=str)):
            print(f"[resume] {ckpt_dir} belongs to another configuration: starting fresh",
                  file=sys.stderr, flush=True)
            shutil.rmtree(ckpt_dir)
        else:
            for d in ckpt_dir.glob("checkpoint-*"):
                if d.is_dir() and not (d / CHECKPOINT_MARKER).exists():
                    print(f"[resume] removing incomplete {d.name} (killed while saving)",
                          file=sys.stderr, flush=True)
                    shutil.rmtree(d)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_json(key_file, run_key)
    done = complete_checkpoints(ckpt_dir)
    return done[-1] if done else None


# ---------------------------------------------------------------- the run


def _curves(log_history: list[dict]) -> dict[str, list[dict]]:
    train = [
        {k: e[k] for k in ("step", "loss", "learning_rate", "grad_norm") if k in e}
        for e in log_history if "loss" in e
    ]
    evals = [{"step": e["step"], "eval_loss": e["eval_loss"]} for e in log_history if "eval_loss" in e]
    return {"train": train, "eval": evals}


def _run(
    *,
    kind: str,
    model,
    tokenizer,
    train_dataset,
    eval_dataset,
    policy: str,
    params: dict[str, Any],
    out_dir: Path,
    run_key: dict[str, Any],
    summary_extra: dict[str, Any],
    config_slice: Any,
    inputs: dict[str, str | os.PathLike],
    started: float,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / "checkpoints"
    resume_from = prepare_resume(ckpt_dir, run_key)
    resumed_from_step = int(resume_from.name.split("-")[-1]) if resume_from else None
    label = f"{kind} {policy}" if kind == "finetune" else kind
    trainer, stop_rules, throughput = build_trainer(
        model=model, tokenizer=tokenizer, train_dataset=train_dataset, eval_dataset=eval_dataset,
        policy=policy, params=params, output_dir=ckpt_dir, label=label,
    )
    prior_stop = None
    if resume_from:
        print(f"[{label}] resuming from {resume_from}", flush=True)
        prior = TrainerState.load_from_json(str(resume_from / "trainer_state.json"))
        # killed after a stop rule fired at a save step, before the final save: do not train on
        prior_stop = StopRules(params).replay(prior.log_history)
    if prior_stop:
        trainer._load_from_checkpoint(str(resume_from))
        trainer.state, train_out = prior, None
        stop_rules.stop = prior_stop
    else:
        train_out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    stop = stop_rules.stop or {"reason": "max_steps", "step": state.global_step,
                               "detail": {"max_steps": params["max_steps"]}}
    if stop["reason"] == "nonfinite":
        good = [c for c in complete_checkpoints(ckpt_dir) if int(c.name.split("-")[-1]) < stop["step"]]
        if not good:
            summary = _summary(kind, policy, params, state, stop, throughput, train_out, resumed_from_step,
                               None, summary_extra, config_slice, inputs, started)
            _atomic_write_json(out_dir / "summary.json", summary)
            raise TrainingError(
                f"{label}: loss became non-finite at step {stop['step']} before any checkpoint was "
                f"saved; nothing good to keep (lower learning_rate?). See {out_dir / 'summary.json'}"
            )
        trainer._load_from_checkpoint(str(good[-1]))
        if trainer.master_optimizer is not None:
            trainer.master_optimizer.sync_master_from_model()
        stop["detail"]["restored_from_step"] = int(good[-1].name.split("-")[-1])
        print(f"[{label}] non-finite loss at step {stop['step']}: final = checkpoint {good[-1].name}",
              flush=True)
    elif trainer.args.eval_strategy != "no" and not any(
        e.get("step") == state.global_step and "eval_loss" in e for e in state.log_history
    ):
        trainer.evaluate()  # so the summary's last eval loss belongs to the final weights
    ckpt_info = save_final(trainer, out_dir, dtype=_save_dtype(params),
                           extra={"kind": kind, "policy": policy, "step": state.global_step})
    summary = _summary(kind, policy, params, state, stop, throughput, train_out, resumed_from_step,
                       ckpt_info, summary_extra, config_slice, inputs, started)
    _atomic_write_json(out_dir / "summary.json", summary)
    if not params["keep_checkpoints"]:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    print(f"[{label}] done: {state.global_step} steps, stop reason {stop['reason']}, "
          f"final checkpoint {ckpt_info['path']} ({ckpt_info['format']})", flush=True)
    return summary


def _summary(kind, policy, params, state, stop, throughput, train_out, resumed_from_step, ckpt_info,
             extra, config_slice, inputs, started) -> dict[str, Any]:
    curves = _curves(state.log_history)
    evals = [e["eval_loss"] for e in curves["eval"]]
    tp = throughput.summary()
    tp["train_runtime_s"] = train_out.metrics.get("train_runtime") if train_out is not None else None
    return {
        "kind": kind,
        "policy": policy,
        "steps_done": state.global_step,
        "max_steps": params["max_steps"],
        "stop": stop,
        "resumed_from_step": resumed_from_step,
        "final_train_loss": curves["train"][-1]["loss"] if curves["train"] else None,
        "final_eval_loss": evals[-1] if evals else None,
        "best_eval_loss": min(evals) if evals else None,
        "curves": curves,
        "throughput": tp,
        "tokens_seen": state.num_input_tokens_seen,
        "checkpoint": ckpt_info,
        "params": params,
        **extra,
        "provenance": provenance.collect(
            config_slice=config_slice if config_slice is not None else {"policy": policy, "params": params},
            inputs=inputs,
            started=started,
        ),
    }


def _leakage_gate(model, pairs, policy, params, probe_result, allow_leakage) -> dict:
    """Run (or take) the leakage probe for the training policy; refuse a leaking policy unless allowed."""
    if probe_result is None:
        try:
            from maskablate import leakage
        except ImportError as exc:
            raise TrainingError(f"leakage gate: maskablate.leakage is not importable ({exc})") from exc
        kw = {"batch_size": params["probe_batch_size"]}
        if params["probe_threshold"] is not None:
            kw["threshold"] = params["probe_threshold"]
        sample = pairs[: params["probe_size"]]
        print(f"[finetune {policy}] leakage probe on {len(sample)} held-out pairs", flush=True)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            probe_result = leakage.probe(model, sample, policy, **kw)
        model.train(was_training)
    elif probe_result.get("policy") != policy:
        raise TrainingConfigError(
            f"leakage gate: the given probe result is for policy {probe_result.get('policy')!r}, "
            f"but training uses {policy!r}"
        )
    if probe_result.get("leaks") and not allow_leakage:
        g = lambda k: f"{probe_result[k]:.4g}" if isinstance(probe_result.get(k), (int, float)) else "?"  # noqa: E731
        raise LeakageGateError(
            f"leakage gate: training under policy {policy!r} leaks labels: response loss "
            f"{g('loss_policy')} under {policy} vs {g('loss_causal')} causal "
            f"(ratio {g('ratio')} < threshold {g('threshold')}). "
            f"The model would learn to read the answer. To reproduce this on purpose set "
            f"allow_leakage: true for this finetune variant (CLI: --allow-leakage)."
        )
    return {**probe_result, "allowed": bool(allow_leakage and probe_result.get("leaks"))}


def finetune(
    *,
    model_path: str | os.PathLike,
    data: str | os.PathLike,
    policy: str,
    params: dict | None,
    out_dir: str | os.PathLike,
    probe_result: dict | None = None,
    allow_leakage: bool = False,
    config_slice: Any = None,
) -> dict[str, Any]:
    """Full-weight SFT of ``model_path`` on Alpaca rows from ``data`` under ``policy``.

    Writes ``out_dir/final/`` (safetensors + tokenizer + manifest) and ``out_dir/summary.json``;
    Trainer checkpoints go to ``out_dir/checkpoints/`` and a rerun resumes from the last complete
    one. Raises :class:`LeakageGateError` before training when the policy leaks and
    ``allow_leakage`` is false.
    """
    from maskablate.modeling import load_causal_lm, load_tokenizer

    started = time.time()
    masks.check_policy(policy)
    p = resolve_params(params, FINETUNE_DEFAULTS)
    rows = sft_data.load_rows(data)
    if p["eval_size"]:
        train_rows, eval_rows = sft_data.split_rows(rows, p["eval_size"], p["seed"])
    else:
        train_rows, eval_rows = rows, []
    tokenizer = load_tokenizer(model_path)
    train_pairs = sft_data.tokenize_rows(tokenizer, train_rows, p["max_seq_len"])
    eval_pairs = sft_data.tokenize_rows(tokenizer, eval_rows, p["max_seq_len"])
    print(f"[finetune {policy}] {len(train_pairs)} train / {len(eval_pairs)} eval pairs from {data}; "
          f"loading {model_path}", flush=True)
    model = load_causal_lm(model_path, dtype=_model_dtype(p), attn_implementation=p["attn_implementation"])
    if torch.cuda.is_available():
        model.to("cuda")
    gate = _leakage_gate(model, eval_pairs or train_pairs, policy, p, probe_result, allow_leakage)
    model.config.use_cache = False
    run_key = {"kind": "finetune", "model_path": str(model_path), "data": str(data), "policy": policy,
               "params": p, "allow_leakage": bool(allow_leakage)}
    inputs = {"model": model_path}
    if Path(data).exists():
        inputs["data"] = data
    return _run(
        kind="finetune", model=model, tokenizer=tokenizer,
        train_dataset=sft_examples(train_pairs), eval_dataset=sft_examples(eval_pairs),
        policy=policy, params=p, out_dir=Path(out_dir), run_key=run_key,
        summary_extra={"model_path": str(model_path), "data": str(data),
                       "n_train": len(train_pairs), "n_eval": len(eval_pairs), "leakage_probe": gate},
        config_slice=config_slice, inputs=inputs, started=started,
    )


def pretrain(
    *,
    corpus: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    arch: dict | None,
    params: dict | None,
    out_dir: str | os.PathLike,
    config_slice: Any = None,
) -> dict[str, Any]:
    """Causal pretraining of a fresh tiny Ministral-3 (``tiny_ministral3_config(**arch)``) on ``corpus``."""
    from maskablate.modeling import build_tiny_model, load_tokenizer, tiny_ministral3_config

    started = time.time()
    p = resolve_params(params, PRETRAIN_DEFAULTS)
    tokenizer = load_tokenizer(tokenizer_dir)
    docs = load_corpus(corpus)
    blocks = pack_corpus(tokenizer, docs, p["max_seq_len"])
    n_eval = min(p["eval_size"], len(blocks) - 1)
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(p["seed"])).tolist()
    eval_blocks = [blocks[i] for i in sorted(order[:n_eval])]
    train_blocks = [blocks[i] for i in sorted(order[n_eval:])]
    arch = dict(arch or {})
    arch.setdefault("vocab_size", len(tokenizer))
    for key, tok_id in (("bos_token_id", tokenizer.bos_token_id), ("eos_token_id", tokenizer.eos_token_id),
                        ("pad_token_id", tokenizer.pad_token_id)):
        arch.setdefault(key, tok_id)
    config = tiny_ministral3_config(**arch)
    config._attn_implementation = p["attn_implementation"]
    model = build_tiny_model(config, seed=p["seed"]).to(_model_dtype(p))
    model.config.use_cache = False
    print(f"[pretrain] {len(docs)} documents -> {len(train_blocks)} train / {len(eval_blocks)} eval blocks "
          f"of {p['max_seq_len']} tokens; model {sum(t.numel() for t in model.parameters()) / 1e6:.1f} M params",
          flush=True)
    as_examples = lambda bl: ExampleDataset([{"input_ids": b, "prompt_length": 0} for b in bl])  # noqa: E731
    run_key = {"kind": "pretrain", "corpus": str(corpus), "tokenizer": str(tokenizer_dir), "arch": arch, "params": p}
    return _run(
        kind="pretrain", model=model, tokenizer=tokenizer,
        train_dataset=as_examples(train_blocks), eval_dataset=as_examples(eval_blocks),
        policy="causal", params=p, out_dir=Path(out_dir), run_key=run_key,
        summary_extra={"corpus": str(corpus), "arch": arch, "n_train_blocks": len(train_blocks),
                       "n_eval_blocks": len(eval_blocks), "leakage_probe": None},
        config_slice=config_slice, inputs={"corpus": corpus, "tokenizer": tokenizer_dir}, started=started,
    )


# ---------------------------------------------------------------- CLI


def _load_mapping(text: str | None, what: str) -> dict:
    """A JSON/YAML file path or an inline JSON object."""
    if not text:
        return {}
    path = Path(text)
    if not text.lstrip().startswith("{") and path.exists():
        import yaml

        data = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrainingConfigError(f"{what}: {text!r} is neither a file nor a JSON object ({exc})") from exc
    if not isinstance(data, dict):
        raise TrainingConfigError(f"{what}: expected a mapping, got {type(data).__name__}")
    return data


def _apply_sets(params: dict, sets: list[str]) -> dict:
    import yaml

    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise TrainingConfigError(f"--set {item!r}: expected KEY=VALUE")
        params[key.strip()] = yaml.safe_load(value)
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maskablate train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ft = sub.add_parser("finetune", help="SFT under a mask policy (response-only loss)")
    ft.add_argument("--model", required=True, help="model directory or hub id")
    ft.add_argument("--data", required=True, help="Alpaca .jsonl or datasets id")
    ft.add_argument("--policy", required=True, choices=masks.POLICIES)
    ft.add_argument("--probe-result", help="JSON written by `maskablate probe` (else the probe runs here)")
    ft.add_argument("--allow-leakage", action="store_true", help="train under a leaking policy on purpose")
    pt = sub.add_parser("pretrain", help="causal pretraining of a fresh tiny Ministral-3")
    pt.add_argument("--corpus", required=True, help=".jsonl with a 'text' field, or text lines")
    pt.add_argument("--tokenizer", required=True, help="tokenizer directory")
    pt.add_argument("--arch", help="tiny architecture overrides: JSON/YAML file or inline JSON")
    for p in (ft, pt):
        p.add_argument("--out", required=True, help="output directory (final/, summary.json, checkpoints/)")
        p.add_argument("--params", help="hyperparameters: JSON/YAML file or inline JSON")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one parameter")
        p.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        params = _apply_sets(_load_mapping(args.params, "--params"), args.set)
        if args.command == "finetune":
            probe_result = _load_mapping(args.probe_result, "--probe-result") or None
            finetune(model_path=args.model, data=args.data, policy=args.policy, params=params,
                     out_dir=args.out, probe_result=probe_result, allow_leakage=args.allow_leakage)
        else:
            pretrain(corpus=args.corpus, tokenizer_dir=args.tokenizer,
                     arch=_load_mapping(args.arch, "--arch"), params=params, out_dir=args.out)
    except LeakageGateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (TrainingError, sft_data.SFTDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
