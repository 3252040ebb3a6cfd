"""Results trees: the folders a configuration's runs write, experiments beside the
base, and what differs between runs.

The lower layer of the two: a results tree's name, lock, origin, experiments and records, read by
:mod:`ablate.core.reports` (STATUS, ``ablate runs``), never reading it
(tests/guards/test_layering.py). Its modules: docs/design.md's module map (``ablate map``).
"""
