"""The translator's training on the core's training (:mod:`ablate.core.training`): one grid entry,
a translator between a frozen source and a frozen target model.

Modules (import from the one that defines a name): ``recipe`` (the loop-facing recipe,
``TranslatorRecipe``: its loss, data order, optimizer and evaluation with early stopping; the
loop's trainer of it, ``translator_trainer``), ``entries`` (``train_entry``: one entry's run by
the core's driver, and its outputs, ``TranslatorRun``).
"""
