"""ablate: provenance-tracked ablation studies of language models, the library behind the pipeline.

``ablate.core``: what every study shares (provenance, checkpoints, atomic I/O, model loading,
config helpers, planner). ``ablate.mask``: the attention-mask ablation study.
"""

__version__ = "0.2.0"
