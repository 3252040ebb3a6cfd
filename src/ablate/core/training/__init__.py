"""Study-neutral full-weight training: one explicit loop (a study enters through its recipe).

:mod:`.loop` is the loop; a study gives it one :class:`~.recipe.Recipe`; :mod:`.driver` runs one
training start to end. Parameters: the config schema's ``finetune_params`` and
``pretrain_params`` (docs/training.md). Its modules: docs/design.md's module map (``ablate map``).
"""
