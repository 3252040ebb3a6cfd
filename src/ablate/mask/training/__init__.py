"""Full-weight training under a mask policy on the HF Trainer: SFT (stages 3/5) and the tiny model's pretraining.

Two entry points share one Trainer subclass, the callbacks and the saving code:

- :func:`finetune`: instruction/response pairs, loss on response tokens only, every forward built by
  ``masks.policy_forward_kwargs`` (so ``prefix_bidir`` trains a real prefix-LM), a leakage gate
  before the first step, eval loss on held-out pairs.
- :func:`pretrain`: the embedded tiny model's causal pretraining on a text corpus (packed into
  ``max_seq_len`` blocks, loss on every token), starting from a fresh tiny Ministral-3.

The Trainer already does grad accumulation, schedules, adafactor, bf16, gradient checkpointing,
eval, save/resume and RNG restore; this package adds only what it lacks: the policy forward with
logits computed at labelled positions only, stop rules (:class:`StopRules`), checkpoints that are
complete-or-ignored (a marker written last) plus a ``state_dict`` fallback when
``save_pretrained`` fails, an atomic final directory with a hash manifest (all checkpoint I/O:
:mod:`ablate.core.checkpoint`), and ``summary.json``.
Parameters and their defaults: :data:`FINETUNE_DEFAULTS`, :data:`PRETRAIN_DEFAULTS` (docs/training.md).

Modules: ``params`` (defaults, resolution, errors), ``data`` (examples, collator, corpus packing),
``callbacks`` (stop rules, throughput, progress), ``trainer`` (policy loss, fp32-master optimizer,
``MaskPolicyTrainer``, the final save), ``run`` (``finetune``, ``pretrain``), ``cli`` (``main``).
"""

from ablate.mask.training.callbacks import Progress, StopRules, Throughput
from ablate.mask.training.cli import main
from ablate.mask.training.data import (
    ExampleDataset,
    PolicyCollator,
    load_corpus,
    pack_corpus,
    sft_examples,
)
from ablate.mask.training.params import (
    FINETUNE_DEFAULTS,
    IGNORE_INDEX,
    PRETRAIN_DEFAULTS,
    LeakageGateError,
    TrainingConfigError,
    TrainingError,
    resolve_params,
)
from ablate.mask.training.run import finetune, pretrain
from ablate.mask.training.trainer import (
    MaskPolicyTrainer,
    MasterWeightsOptimizer,
    build_trainer,
    policy_loss_sum,
    save_final,
)

__all__ = [
    "FINETUNE_DEFAULTS",
    "IGNORE_INDEX",
    "PRETRAIN_DEFAULTS",
    "ExampleDataset",
    "LeakageGateError",
    "MaskPolicyTrainer",
    "MasterWeightsOptimizer",
    "PolicyCollator",
    "Progress",
    "StopRules",
    "Throughput",
    "TrainingConfigError",
    "TrainingError",
    "build_trainer",
    "finetune",
    "load_corpus",
    "main",
    "pack_corpus",
    "policy_loss_sum",
    "pretrain",
    "resolve_params",
    "save_final",
    "sft_examples",
]
