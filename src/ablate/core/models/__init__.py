"""Models: the one loader of models and tokenizers, and the one generation engine
that decodes with them.

Its modules: docs/design.md's module map (``ablate map``).
"""
