"""ablate: provenance-tracked ablation studies of language models, the library behind the pipeline.

Its packages and modules: docs/design.md's module map (``ablate map``).
"""

__version__ = "0.2.0"
