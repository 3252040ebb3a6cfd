"""The translator's training on the core's training (:mod:`ablate.core.training`): one grid entry,
a translator between a frozen source and a frozen target model."""
