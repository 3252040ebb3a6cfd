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
Parameters, their bounds and defaults are the config schema's ``finetune_params`` and
``pretrain_params`` (workflow/schemas/config.schema.yaml; docs/training.md).

Modules (import from the one that defines a name): ``params`` (parameters from the schema,
resolution, errors), ``data`` (examples, collator, corpus packing), ``callbacks`` (stop rules,
throughput, progress), ``trainer`` (policy loss, fp32-master optimizer, ``MaskPolicyTrainer``,
the final save), ``run`` (``finetune``, ``pretrain``), ``cli`` (``main``, ``ablate train``).
"""
