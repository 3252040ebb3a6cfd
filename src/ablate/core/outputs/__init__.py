"""What a job writes and how it is read back: atomic files, the provenance block
every output carries, the records its readers read, checkpoints' integrity, the base model card.

Its modules: docs/design.md's module map (``ablate map``).
"""
