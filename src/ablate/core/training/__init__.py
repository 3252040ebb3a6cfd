"""Study-neutral full-weight training on the HF Trainer (a study's rule enters through hooks).

The Trainer already does grad accumulation, schedules, adafactor, bf16, gradient checkpointing,
eval, save/resume and RNG restore; this package adds only what it lacks: the loss with logits
computed at labelled positions only and a forward-kwargs hook (a study's attention rule), stop
rules (:class:`~ablate.core.training.callbacks.StopRules`), checkpoints that are
complete-or-ignored (a marker written last) plus a ``state_dict`` fallback when
``save_pretrained`` fails, an atomic final directory with a hash manifest (all checkpoint I/O:
:mod:`ablate.core.checkpoint`), and ``summary.json``. Parameters, their bounds and defaults are the
config schema's ``finetune_params`` and ``pretrain_params`` (its core part, ablate/core/config.schema.yaml;
docs/training.md).

Modules (import from the one that defines a name): ``params`` (parameters from the schema,
resolution, dtype rules, errors, disk need), ``data`` (examples, collator, corpus packing),
``callbacks`` (stop rules, throughput, progress), ``trainer`` (loss, fp32-master optimizer,
``CoreTrainer``, ``build_trainer``, the final save), ``adafactor`` (HF Adafactor's update compiled per
parameter, the masters' optimizer on CUDA, and the sharded step), ``sharding`` (FSDP2 sharding of a
run in N > 1 processes, its Trainer adapter), ``speed`` (regional compilation), ``watchdog`` (a
stalled run fails within a bound), ``vocab_rows`` (a ``loss_vocab: corpus`` run's step over the
data's rows of a tied embedding only), ``run`` (``train_run``: one run start to end).
"""
