"""What a job writes and how it is read back: atomic files, the provenance block
every output carries, the records its readers read, checkpoints' integrity, the base model card.

Modules: ``io`` (atomic writes), ``provenance`` (the provenance block), ``records`` (how every
reader reads a finished job's files), ``checkpoint_integrity`` (a checkpoint directory written
whole, checked before it is loaded), ``model_card`` (what "the base model" is),
``hub_revisions`` (a hub branch or tag pinned to its commit), ``phases`` (a job's seconds per
phase).
"""
