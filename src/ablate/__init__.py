"""ablate: provenance-tracked ablation studies of language models, the library behind the pipeline.

``ablate.core``: what every study shares and knows no study (provenance, checkpoints, atomic
I/O, model loading, training, config helpers, STATUS, planner). ``ablate.mask``: the
attention-mask ablation study. ``ablate.bridge``: the cross-model latent bridge study.
``ablate.studies``: the registry through which the core finds a study's side. ``ablate.cli``: the
``ablate`` command. The module map: docs/design.md.
"""

__version__ = "0.2.0"
