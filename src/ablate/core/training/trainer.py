"""The core Trainer: loss over labelled positions with a forward-kwargs hook (a study's attention
rule enters there), fp32-master optimizer, complete-or-ignored checkpoints and fallback saving (the
checkpoint I/O itself lives in :mod:`ablate.core.checkpoint`), the final save."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.optimization import Adafactor
from transformers.trainer import SCHEDULER_NAME
from transformers.trainer_callback import PrinterCallback

from ablate.core import checkpoint, interrupts, modeling, parallel
from ablate.core.phases import Phases
from ablate.core.training import sharding, speed
from ablate.core.training.adafactor import FusedAdafactor
from ablate.core.training.callbacks import Progress, StopRules, Throughput
from ablate.core.training.data import PolicyCollator
from ablate.core.training.params import (
    IGNORE_INDEX,
    TrainingConfigError,
    bf16_enabled,
    dtype_name,
    master_weights_enabled,
)
from ablate.core.training.watchdog import StallWatchdog


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


def head_loss_sum(lm_head: torch.nn.Linear, hidden: torch.Tensor, targets: torch.Tensor):
    """Summed CE of ``lm_head(hidden)`` against ``targets`` (the fast head's loss; a fused
    linear-CE kernel with the same signature can replace it: ``CoreTrainer.head_loss``)."""
    return F.cross_entropy(lm_head(hidden).float(), targets, reduction="sum")


def vocab_head_loss(token_ids) -> Any:
    """A head loss whose softmax runs over ``token_ids`` only (``pretrain.loss_vocab: corpus``).

    The embedded model keeps Tekken's 131072-row lm_head, but its corpus uses a few hundred ids:
    scoring only those rows makes a CPU pretraining step ~14x faster (bench/tools/world_search.py). The
    other rows are neither scored nor trained (:mod:`ablate.core.training.vocab_rows` then leaves
    them out of the step too); evaluation still uses the full head. A target outside
    ``token_ids`` is an error, not a silent skip. The loss's ``ids``: the sorted ids."""
    ids = torch.tensor(sorted(set(int(t) for t in token_ids)), dtype=torch.long)
    on: dict = {}  # per device: the ids there

    def loss(lm_head: torch.nn.Linear, hidden: torch.Tensor, targets: torch.Tensor):
        here = on.setdefault(hidden.device, ids.to(hidden.device))
        local = torch.searchsorted(here, targets).clamp_(max=len(here) - 1)
        outside = here[local] != targets
        if bool(outside.any()):
            bad = sorted(set(targets[outside].tolist()))[:5]
            raise TrainingConfigError(f"loss_vocab: target token id(s) {bad} are outside it")
        rows = getattr(lm_head, "row_ids", None)  # a head cut to some rows (vocab_rows.RowHead)
        index = here if rows is None else torch.searchsorted(rows, here)
        bias = None if lm_head.bias is None else lm_head.bias[index]
        logits = F.linear(hidden, lm_head.weight[index], bias)
        return F.cross_entropy(logits.float(), local, reduction="sum")

    loss.ids = ids
    return loss


def causal_forward_kwargs(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The default forward-kwargs hook: the model's own causal attention over the padding mask."""
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _fast_head_loss(model, kw: dict, labels, keep, head_loss):
    """(the head loss at labelled positions, their count): the decoder body, then the lm_head only
    where a label is kept."""
    hidden = model.get_decoder()(**kw, use_cache=False).last_hidden_state[:, :-1]
    return head_loss(model.get_output_embeddings(), hidden[keep], labels[keep]), keep.sum()


def loss_sum(
    model,
    batch: dict[str, torch.Tensor],
    forward_kwargs=causal_forward_kwargs,
    *,
    fast_head: bool = True,
    head_loss=head_loss_sum,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of next-token CE over labelled positions, number of labelled positions); the forward
    runs with ``forward_kwargs(model, batch)``.

    With ``fast_head`` the decoder body runs once and the lm_head only at positions whose shifted
    label is not -100: with a 131k vocab and response-only SFT labels this is most of the lm_head
    cost saved, and the result equals the model's own loss (tests/mask/test_training.py).
    """
    labels = batch["labels"][:, 1:]
    bare = getattr(model, "module", model)  # the hook reads the model's config; DDP has none
    kw = forward_kwargs(bare, batch)
    keep = labels != IGNORE_INDEX
    if fast_head and _fast_head_ok(model):
        if sharding.is_sharded(model):  # the root's weights gathered around the decoder + head
            return sharding.gathered(model, _fast_head_loss, kw, labels, keep, head_loss)
        return _fast_head_loss(model, kw, labels, keep, head_loss)
    if head_loss is not head_loss_sum:  # the model's own loss would silently replace it
        raise TrainingConfigError(
            "this head loss (e.g. loss_vocab: corpus) needs the fast head: a bare or sharded "
            "decoder with a linear lm_head, not wrapped (DDP)"
        )
    logits = model(**kw, use_cache=False).logits[:, :-1].flatten(0, 1)
    targets = labels.flatten()
    total = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return total, keep.sum()


class MasterWeightsOptimizer(torch.optim.Optimizer):
    """Any torch optimizer run on fp32 master copies of 16-bit model weights.

    bf16 weights make the forward/backward 2.2x faster than bf16 autocast over fp32 weights on an
    H200 (docs/benchmarks.md), but a bf16 weight cannot take a 2e-5 x O(1) update (its spacing near
    0.02 is ~1e-4): the update rounds away. So the optimizer keeps fp32 masters, the backward
    accumulates each gradient into the master's fp32 ``.grad`` (a post-accumulate hook, which also
    frees the 16-bit grad), the inner optimizer steps the masters, and the weights are copied back.
    Numerically this is fp32-master mixed precision; the 16-bit weights are only a cache.
    An inner optimizer with ``takes_low_precision_grads`` and ``mirrors`` (FusedAdafactor) gets a
    single micro-batch's gradient uncast (the sum of several in fp32, as above) and writes the
    16-bit weights itself: the same numbers with three fewer passes over the masters' size.
    Its state_dict carries the masters, so a resumed run continues bit-for-bit.
    """

    def __init__(self, param_groups: list[dict], inner_cls, inner_kwargs: dict):
        self.model_params: list[torch.nn.Parameter] = []
        self.master_params: list[torch.Tensor] = []
        self._hooks = []
        self._grad_scale: torch.Tensor | None = None  # a clip factor for the fused step (clip_)
        # an inner optimizer that takes 16-bit gradients (FusedAdafactor) gets a micro-batch's
        # gradient uncast, as a ``grads`` entry (a tensor's .grad must have its dtype): with one
        # micro-batch per step, no fp32 copy is written and its reads move half the bytes
        self._low = getattr(inner_cls, "takes_low_precision_grads", False)
        self._grads: list[torch.Tensor | None] = []
        master_groups = []
        for group in param_groups:
            masters = []
            for p in group["params"]:
                m = p.detach().float().clone()
                self._hooks.append(
                    p.register_post_accumulate_grad_hook(self._hook(m, len(self._grads)))
                )
                self.model_params.append(p)
                self.master_params.append(m)
                self._grads.append(None)
                masters.append(m)
            master_groups.append({**group, "params": masters})
        self.inner = inner_cls(master_groups, **inner_kwargs)
        mirrors = getattr(self.inner, "mirrors", None)  # an inner that writes the 16-bit weights
        if mirrors is not None:
            mirrors.update(zip(self.master_params, self.model_params))
        self._copy_back = mirrors is None
        # the attributes torch's Optimizer API (LR schedulers, accelerate) reads
        self.defaults = self.inner.defaults
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}
        self._optimizer_state_dict_pre_hooks = {}
        self._optimizer_state_dict_post_hooks = {}
        self._optimizer_load_state_dict_pre_hooks = {}
        self._optimizer_load_state_dict_post_hooks = {}

    def _hook(self, master: torch.Tensor, i: int):
        def accumulate(p: torch.Tensor) -> None:
            if not self._low:
                g = p.grad.to(torch.float32)
                if master.grad is None:
                    master.grad = g
                else:
                    master.grad.add_(g)
            elif self._grads[i] is None:
                self._grads[i] = p.grad  # kept as it is: cast where the optimizer reads it
            elif self._grads[i].dtype != torch.float32:  # a second micro-batch: sum in fp32
                self._grads[i] = self._grads[i].float().add_(p.grad)
            else:
                self._grads[i].add_(p.grad)
            p.grad = None

        return accumulate

    def grads(self) -> list[torch.Tensor | None]:
        """Each master's gradient: its ``.grad`` (set by hand, or by the hooks in fp32 mode) or the
        hooks' accumulated one."""
        return [
            m.grad if m.grad is not None else g for m, g in zip(self.master_params, self._grads)
        ]

    def clip_(self, max_norm: float) -> torch.Tensor:
        """Clip the masters' gradients to ``max_norm``; returns the norm before clipping.

        A fused inner optimizer (torch's fused AdamW) takes the clip factor as its AMP
        ``grad_scale`` input and divides inside its own kernel: at 3.4 B parameters that saves a
        read and a write of 13.7 GB of fp32 gradients per step (~9 ms on an H100,
        bench/results/mfu_h100.md). Others get torch's own in-place clip."""
        grads = [g for g in self.grads() if g is not None]
        # get_total_norm's computation, in fp32 whatever the gradients' dtype
        norms = torch._foreach_norm(grads, 2.0, dtype=torch.float32) if grads else []
        norm = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
        if getattr(self.inner, "_step_supports_amp_scaling", False):
            # clip_grads_with_norm_'s factor max_norm / (norm + 1e-6), capped at 1, as a divisor
            self._grad_scale = ((norm + 1e-6) / max_norm).clamp(min=1.0)
        else:  # it takes the tensors whose .grad it scales (given the grads, it did nothing)
            with_grad = [m for m in self.master_params if m.grad is not None]
            torch.nn.utils.clip_grads_with_norm_(with_grad, max_norm, norm)
        return norm

    @property
    def param_groups(self):
        return self.inner.param_groups

    @property
    def state(self):
        return self.inner.state

    @torch.no_grad()
    def step(self, closure=None):
        scale, self._grad_scale = self._grad_scale, None
        self.inner.grad_scale = scale  # None: no clip pending (torch's optimizers read None)
        if self._low:
            self.inner.grads = {
                m: g for m, g in zip(self.master_params, self._grads) if g is not None
            }
        try:
            loss = self.inner.step(closure)
        finally:
            del self.inner.grad_scale
        if self._copy_back:
            torch._foreach_copy_(self.model_params, self.master_params)
        self.zero_grad()  # the Trainer only calls model.zero_grad(), which cannot see the masters'
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for t in (*self.master_params, *self.model_params):
            t.grad = None
        self._grads = [None] * len(self._grads)
        if self._low:
            self.inner.grads = {}

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
        torch._foreach_copy_(
            self.master_params,
            [t.to(m.device) for t, m in zip(state_dict["master"], self.master_params, strict=True)],
        )
        torch._foreach_copy_(self.model_params, self.master_params)


def fused_inner(cls, kwargs: dict, params: list[torch.Tensor]):
    """The masters' optimizer class: HF's Adafactor becomes :class:`FusedAdafactor` (the same
    update, compiled per group of like parameters, the clip inside it) on CUDA; on CPU HF's own
    loop stays (compiling costs seconds there and saves little, docs/training.md)."""
    if cls is Adafactor and FusedAdafactor.supports(kwargs) and all(p.is_cuda for p in params):
        return FusedAdafactor
    return cls


#: max_shard_size of the saved weights (see CoreTrainer._save)
SAVE_SHARD = "2GB"


class CoreTrainer(Trainer):
    """HF Trainer whose loss is :func:`loss_sum` with the ``forward_kwargs`` hook; adds the
    fp32-master optimizer, fallback saving and complete-marked checkpoints."""

    def __init__(
        self,
        *args,
        forward_kwargs=causal_forward_kwargs,
        stop_rules: StopRules | None = None,
        fast_head: bool = True,
        master_weights: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.forward_kwargs = forward_kwargs
        self.stop_rules = stop_rules
        self.fast_head = fast_head
        self.master_weights = master_weights
        self.head_loss = head_loss_sum  # bench/bench_packing.py --liger puts a fused kernel here
        # False keeps HF's optimizer class (no fused_inner swap): bench/bench_packing.py --hfopt
        self.fused_optimizer = True
        self._pending_tokens: torch.Tensor | None = None  # counted, not yet in state
        self._full_state: dict[str, torch.Tensor] | None = None  # a sharded model's, gathered
        self._in_checkpoint = False  # inside _save_checkpoint (a sharded model saves shards)
        self.last_save_format: str | None = None

    @property
    def _bare_optimizer(self):
        return getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate wraps it

    @property
    def master_optimizer(self) -> MasterWeightsOptimizer | None:
        opt = self._bare_optimizer
        return opt if isinstance(opt, MasterWeightsOptimizer) else None

    def create_optimizer(self, model=None):
        model = self.model if model is None else model
        sharded = sharding.is_sharded(model)
        if not (self.master_weights or sharded) or self.optimizer is not None:
            return super().create_optimizer(model)
        cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        decay = set(self.get_decay_parameter_names(model))
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if n in decay], "weight_decay": self.args.weight_decay},
            {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        if sharded:  # the fp32 shards are the masters; Adafactor's statistics span the shards
            if cls is Adafactor and FusedAdafactor.supports(kwargs):
                cls = FusedAdafactor
            self.optimizer = cls(groups, **kwargs)
            return self.optimizer
        if self.fused_optimizer:
            cls = fused_inner(cls, kwargs, [p for _, p in named])
        self.optimizer = MasterWeightsOptimizer(groups, cls, kwargs)
        return self.optimizer

    def _defer_fsdp_gradient_reduction(self):
        return sharding.ShardedAdapter.defer_gradient_reduction(self.model)

    def gather_weights(self) -> None:
        """Every process: a sharded model's whole weights onto process 0 for :meth:`_save`
        (a collective, so before only process 0 goes on to save)."""
        if sharding.is_sharded(self.model):
            self._full_state = sharding.full_state_dict(self.model)

    def _clip_grad_norm(self, model):
        master = self.master_optimizer
        if master is None:
            return super()._clip_grad_norm(model)
        # the gradients live on the fp32 masters (the 16-bit ones are freed by the hooks)
        return master.clip_(self.args.max_grad_norm)

    def _track_num_input_tokens(self, inputs):
        """Count non-pad tokens on the device, without the Trainer's ``.item()`` per micro-batch:
        that sync left the GPU idle while the host queued the next forward (~8 % of a 3.4 B step
        on an H100, bench/results/mfu_h100.md). :meth:`_flush_tokens` adds the count to
        ``state.num_input_tokens_seen`` before each log, checkpoint and at the end."""
        mask = inputs.get("attention_mask")
        if parallel.world_size() > 1 or mask is None:
            return super()._track_num_input_tokens(inputs)
        n = mask.sum()
        self._pending_tokens = n if self._pending_tokens is None else self._pending_tokens + n

    def _flush_tokens(self) -> None:
        if self._pending_tokens is not None:
            self.state.num_input_tokens_seen += int(self._pending_tokens)
            self._pending_tokens = None

    def log(self, logs, *args, **kwargs):
        self._flush_tokens()
        return super().log(logs, *args, **kwargs)

    def train(self, *args, **kwargs):
        try:
            out = super().train(*args, **kwargs)
        finally:  # an exception skips on_train_end: the watchdog must not outlive its training
            for cb in self.callback_handler.callbacks:
                if isinstance(cb, StallWatchdog):
                    cb.stop()
        # after a successful run only: flushing reads a device tensor, which after a failed step
        # (a CUDA error) would raise again and hide the first error; checkpoints flush themselves
        self._flush_tokens()
        return out

    def export_weights(self, dtype: torch.dtype) -> None:
        """Cast the model to ``dtype`` for saving; with master weights, take the fp32 values from them."""
        if self._full_state is not None:  # sharded: the gathered fp32 weights are the values
            self._full_state = {k: v.to(dtype) for k, v in self._full_state.items()}
            return
        model = self.accelerator.unwrap_model(self.model)
        if model.dtype != dtype:
            model.to(dtype)
        if self.master_optimizer is not None:
            with torch.no_grad():
                torch._foreach_copy_(
                    self.master_optimizer.model_params, self.master_optimizer.master_params
                )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        unwrapped = self.accelerator.unwrap_model(model)
        # A wrapper (DDP, DataParallel) must see the forward for its hooks: fast head on bare
        # models only (a sharded model is bare: loss_sum runs its fast head as a root forward).
        target = unwrapped if unwrapped is model else model
        bare = unwrapped is model
        # the Trainer's mixed precision is a wrapper on model.forward, which the fast head skips
        # (it calls the decoder): fp32 weights with bf16 on ran in full fp32, 10x slower
        with self.accelerator.autocast():
            total, n = loss_sum(
                target,
                inputs,
                self.forward_kwargs,
                fast_head=self.fast_head and bare,
                head_loss=self.head_loss,
            )
        if num_items_in_batch is not None:
            # normalised over the whole accumulated batch: the Trainer then skips its GA division
            loss = total / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        else:
            loss = total / n.clamp(min=1)
        return (loss, {"loss": loss}) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.stop_rules is not None:
            self.stop_rules.watch_micro_loss(self.state.global_step + 1, loss)
        return loss

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """save_pretrained, or, when it raises, the state_dict fallback (the seed hit a conversion error)."""
        output_dir = output_dir or self.args.output_dir
        if state_dict is None:
            state_dict = self._full_state  # a sharded model's (gather_weights); else None
        model = self.accelerator.unwrap_model(self.model)
        save_pretrained = model.save_pretrained
        # shards of SAVE_SHARD (transformers' default is one 50 GB file): the manifest and the
        # loaders' checks hash the shards in parallel, not 6.9 GB in one sha256 stream at 3.4 B
        model.save_pretrained = functools.partial(save_pretrained, max_shard_size=SAVE_SHARD)
        try:
            super()._save(output_dir, state_dict=state_dict)
            self.last_save_format = checkpoint.FORMAT_SAVE_PRETRAINED
        except Exception as exc:  # any failure of the model's own serializer
            print(
                f"[save] save_pretrained failed ({type(exc).__name__}: {exc}); "
                f"writing the state_dict fallback to {output_dir}",
                file=sys.stderr,
                flush=True,
            )
            checkpoint.save_state_dict_fallback(
                self.accelerator.unwrap_model(self.model),
                output_dir,
                tokenizer=self.processing_class,
            )
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))
            self.last_save_format = checkpoint.FORMAT_FALLBACK
        finally:
            del model.save_pretrained  # the class's method again

    def _save_checkpoint(self, model, trial) -> None:
        self._flush_tokens()  # the checkpoint's trainer_state carries the count
        self._in_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._in_checkpoint = False
        # every process's files (its shards, its RNG state) are in before the marker
        parallel.barrier()
        # Written last: a checkpoint without it was cut off mid-save and is never resumed from.
        ckpt = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        if self.args.should_save:  # one writer when data-parallel
            checkpoint.mark_complete(ckpt, self.state.global_step, self.last_save_format)

    # A sharded run's checkpoint: the weights and the optimizer state as shards
    # (sharding.save_checkpoint), not whole weights gathered onto process 0 at every save.
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if self._in_checkpoint and sharding.is_sharded(self.model):
            return  # the weights go with the optimizer state, in _save_optimizer_and_scheduler
        super().save_model(output_dir, _internal_call)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if not sharding.is_sharded(self.model):
            return super()._save_optimizer_and_scheduler(output_dir)
        sharding.save_checkpoint(self.model, self._bare_optimizer, output_dir)
        if self.args.should_save:
            torch.save(self.lr_scheduler.state_dict(), os.path.join(output_dir, SCHEDULER_NAME))
        self.last_save_format = checkpoint.FORMAT_SHARDED

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        if not sharding.is_sharded(self.model):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        sharding.load_model(self.model, resume_from_checkpoint)

    def _load_optimizer_and_scheduler(self, checkpoint_dir: str | None) -> None:
        if checkpoint_dir is None or not sharding.is_sharded(self.model):
            return super()._load_optimizer_and_scheduler(checkpoint_dir)
        sharding.load_optimizer(self.model, self._bare_optimizer, checkpoint_dir)
        state = torch.load(os.path.join(checkpoint_dir, SCHEDULER_NAME), weights_only=True)
        self.lr_scheduler.load_state_dict(state)


def per_process_batch(batch_size: int, grad_accum: int, world: int) -> tuple[int, int]:
    """(per-device batch, grad_accum) of one of ``world`` data-parallel processes such that
    batch x world x grad_accum is the configured global batch: the accumulation split first (the
    same micro-batches, spread over processes), else the batch."""
    if world == 1:
        return batch_size, grad_accum
    if grad_accum % world == 0:
        return batch_size, grad_accum // world
    if batch_size % world == 0:
        return batch_size // world, grad_accum
    raise TrainingConfigError(
        f"the global batch (batch_size {batch_size} x grad_accum {grad_accum}) does not split "
        f"over {world} data-parallel processes: make grad_accum or batch_size a multiple of {world}"
    )


def sharded_run() -> bool:
    """A run in N > 1 processes is sharded (:mod:`.sharding`); one process holds whole weights."""
    return parallel.world_size() > 1


def one_device_per_process(args: TrainingArguments) -> None:
    """Refuse HF's silent ``DataParallel``: it wraps the model when one process sees several GPUs
    (``n_gpu > 1``; 1 under torchrun, where each process has its own). A pipeline job sees only its
    ``gpu`` resource's devices (:mod:`ablate.core.gpus`), and gpu > 1 runs under torchrun."""
    if args.n_gpu > 1:
        raise TrainingConfigError(
            f"{args.n_gpu} GPUs are visible to one training process, so the Trainer would wrap the "
            "model in DataParallel: set CUDA_VISIBLE_DEVICES to one device, or run data-parallel "
            "under torchrun (a finetune's resources gpu: N)"
        )


def _training_arguments(
    p: dict[str, Any],
    output_dir: str | os.PathLike,
    step: tuple[int, int],
    *,
    do_eval: bool,
    save: bool,
    sharded: bool = False,
) -> TrainingArguments:
    """The HF arguments of a run from its resolved params: ``step`` is this process's (batch size,
    grad accumulation); evals and Trainer checkpoints only where ``do_eval`` / ``save``. A
    ``sharded`` model computes in bf16 by its own policy (:mod:`.sharding`): no autocast."""
    batch_size, grad_accum = step
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=p["max_steps"],
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=p["eval_batch_size"],
        gradient_accumulation_steps=grad_accum,
        learning_rate=p["learning_rate"],
        weight_decay=p["weight_decay"],
        # a float in [0, 1) is a ratio of max_steps (transformers 5)
        warmup_steps=p["warmup_ratio"],
        lr_scheduler_type=p["lr_scheduler"],
        optim=p["optim"],
        max_grad_norm=p["max_grad_norm"],
        bf16=bf16_enabled(p["bf16"]) and not sharded,
        activation_checkpointing=p["gradient_checkpointing"],
        activation_checkpointing_kwargs={"use_reentrant": False}
        if p["gradient_checkpointing"]
        else None,
        eval_strategy="steps" if do_eval else "no",
        eval_steps=p["eval_steps"] if do_eval else None,
        save_strategy="steps" if save else "no",
        save_steps=p["save_steps"] if save else None,
        save_total_limit=p["save_total_limit"],
        logging_strategy="steps",
        logging_steps=p["logging_steps"],
        logging_first_step=True,  # the no-learning rule's reference loss
        # its per-micro-batch `if isnan(loss)` is a device sync: the host waited for each backward
        # before it queued the optimizer step. A NaN loss is logged as NaN; StopRules stops on it.
        logging_nan_inf_filter=False,
        seed=p["seed"],
        remove_unused_columns=False,  # prompt_lengths must reach compute_loss
        prediction_loss_only=True,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,  # Progress prints one line per log instead
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
    )


@dataclass(frozen=True)
class TrainerSpec:
    """What :func:`build_trainer` builds a Trainer from: the run's resolved ``params`` (the
    config's training keys), where its checkpoints go, its log label, and a study's hooks.

    ``save=False`` turns intermediate checkpoints off; ``pad_token_id`` stands in for a tokenizer
    (the benchmark); ``head_loss`` replaces :func:`head_loss_sum` (e.g. :func:`vocab_head_loss`);
    ``collator`` (default: :class:`PolicyCollator`), ``step`` (per-device batch size, grad
    accumulation; default ``batch_size``, ``grad_accum``), ``trainer_cls`` and
    ``trainer_kwargs`` (e.g. ``forward_kwargs``) are a study's."""

    params: dict[str, Any]
    output_dir: str | os.PathLike
    label: str
    save: bool = True
    pad_token_id: int | None = None
    head_loss: Any = None
    collator: Any = None
    step: tuple[int, int] | None = None
    trainer_cls: type[CoreTrainer] = CoreTrainer
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)


def build_trainer(
    spec: TrainerSpec,
    *,
    model,
    tokenizer,
    train_dataset,
    eval_dataset,
    extra_callbacks: list[TrainerCallback] | None = None,
) -> tuple[CoreTrainer, StopRules, Throughput]:
    """The Trainer every entry point (and bench/bench_finetune.py) uses, built from ``spec``;
    ``tokenizer`` may be None when ``spec.pad_token_id`` is given (the benchmark)."""
    p, save, collator = spec.params, spec.save, spec.collator
    if p.get("compile_layers"):
        speed.compile_layers(model)
    # an interrupt saves a checkpoint to resume from (ablate.core.interrupts), unless save=False
    on_interrupt = [interrupts.save_on_interrupt()] if save else []
    pad_token_id = spec.pad_token_id
    if pad_token_id is None:
        pad_token_id = tokenizer.pad_token_id
    if collator is None:
        if p.get("packing"):  # a study that packs passes its packing collator
            raise TrainingConfigError("packing: true needs a packing collator; this run has none")
        collator = PolicyCollator(pad_token_id)
    batch_size, grad_accum = spec.step or (p["batch_size"], p["grad_accum"])
    batch_size, grad_accum = per_process_batch(batch_size, grad_accum, parallel.world_size())
    do_eval = eval_dataset is not None and len(eval_dataset) > 0 and p["eval_steps"] > 0
    # save_steps 0: no Trainer checkpoint at all. The final weights are written by save_final; a
    # Trainer checkpoint at the last step duplicated them with the full optimizer state (at 3.4 B
    # ~21 GB written per finetune at the 3.4 B shape) for nothing a rerun could resume.
    save = save and p["save_steps"] > 0
    sharded = sharded_run()
    if sharded:
        compute = torch.bfloat16 if bf16_enabled(p["bf16"]) else torch.float32
        model = sharding.shard(model, compute)
        sharding.ShardedAdapter.mark(model)
    args = _training_arguments(
        p, spec.output_dir, (batch_size, grad_accum), do_eval=do_eval, save=save, sharded=sharded
    )
    one_device_per_process(args)
    stop_rules = StopRules(p)
    throughput = Throughput()
    # after throughput: the stall bound reads the step times it records
    watchdog = StallWatchdog(p, throughput.step_times, spec.label)
    callbacks = [stop_rules, throughput, Progress(spec.label, throughput), watchdog, *on_interrupt]
    callbacks += extra_callbacks or []
    adapt = sharding.ShardedAdapter.constructing(args) if sharded else contextlib.nullcontext()
    with adapt:
        trainer = spec.trainer_cls(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset if do_eval else None,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=callbacks,
            stop_rules=stop_rules,
            master_weights=master_weights_enabled(p),
            **spec.trainer_kwargs,
        )
    trainer.remove_callback(PrinterCallback)  # Progress already prints each log, readably
    if spec.head_loss is not None:
        trainer.head_loss = spec.head_loss
    return trainer, stop_rules, throughput


def save_final(
    trainer: CoreTrainer,
    out_dir: Path,
    *,
    dtype: torch.dtype,
    extra: dict,
    phases: Phases | None = None,
) -> dict:
    """Write ``out_dir/final`` through :func:`ablate.core.checkpoint.write_final`: the weights in
    ``dtype``; a state_dict fallback is reloaded and compared before it is kept. ``phases``
    records ``save_final`` and its parts (``.write``: the weights; the rest is the manifest's
    hashing and the rename)."""
    phases = phases or Phases()
    model = trainer.accelerator.unwrap_model(trainer.model)

    def save(tmp: Path) -> str:
        with phases("save_final.write"):
            trainer.save_model(str(tmp))
        if trainer.last_save_format == checkpoint.FORMAT_FALLBACK:
            with phases("save_final.reload_compare"):
                modeling.verify_loadable(model, tmp)
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; nothing reads it
        return trainer.last_save_format

    name = dtype_name(dtype)
    with phases("save_final"):
        trainer.export_weights(dtype)
        info = checkpoint.write_final(out_dir, save, extra={"dtype": name, **extra})
    return {"path": info["path"], "format": info["format"], "dtype": name}
