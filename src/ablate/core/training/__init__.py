"""Study-neutral full-weight training: one explicit loop (a study enters through its recipe).

:mod:`.loop` is the loop (``setup(spec)`` builds a run, ``train(run)`` runs it, one optimizer
step in one screen); the rest are its parts: the loss with logits at labelled positions only and a
forward-kwargs hook (a study's attention rule), the optimizer (fp32 masters of 16-bit weights),
stop rules, checkpoints that are complete-or-ignored and resume bit for bit, an atomic final
directory with a hash manifest (all checkpoint I/O:
:mod:`ablate.core.outputs.checkpoint_integrity`), and ``summary.json``. Parameters, their bounds and
defaults are the config schema's ``finetune_params`` and ``pretrain_params`` (its core part,
ablate/core/config.schema.yaml; docs/training.md).

Modules (import from the one that defines a name): ``params`` (parameters from the schema,
resolution, dtype rules, errors, disk need), ``data`` (examples, collator, corpus packing),
``loss`` (the loss, the fast head, the corpus-vocabulary head loss), ``optim`` (the optimizer,
the fp32-master wrapper, the schedule), ``adafactor`` (HF Adafactor's update fused, and the
sharded step), ``monitor`` (stop rules, throughput, progress), ``recipe`` (what a study gives the loop: its
batches, loss, logged parts, optimizer and evaluation; next-token by default), ``loop`` (``setup``, ``train``,
``step``, ``evaluate``), ``saving`` (a run's checkpoints and final weights),
``sharded_masters`` (a run in N > 1 processes of a model that fits: the fp32 masters and the
optimizer state divided), ``sharding`` (FSDP2 sharding of one that does not), ``memory`` (which of
the two fits; an optimizer's states per weight), ``speed`` (regional compilation), ``watchdog`` (a
stalled run fails within a bound), ``vocab_rows`` (a ``loss_vocab: corpus`` run's step over the
data's rows of a tied embedding only), ``driver`` (``train_run``: one run start to end),
``pretraining`` (``pretrain``: a fresh tiny model trained on a corpus, both studies'),
``resume`` (which checkpoint a rerun resumes from).
"""
