"""Study-neutral full-weight training: one explicit loop (a study enters through its recipe).

:mod:`.loop` is the loop (``setup`` builds a trainer, ``train`` trains it, one optimizer step in
one screen); a study gives it one :class:`~.recipe.Recipe`; :mod:`.driver` runs one training start
to end. Parameters, their bounds and defaults are the config schema's ``finetune_params`` and
``pretrain_params`` (its core part, ablate/core/config.schema.yaml; docs/training.md).

Modules (import from the one that defines a name; each one's docstring says what it holds, as
docs/design.md's module map does): ``params``, ``data``, ``loss``, ``optim``, ``adafactor``,
``monitor``, ``recipe``, ``loop``, ``saving``, ``sharded_masters``, ``sharding``, ``memory``,
``speed``, ``watchdog``, ``vocab_rows``, ``driver``, ``pretraining``, ``resume``.
"""
