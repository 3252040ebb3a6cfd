"""Results trees: the folders a configuration's runs write, experiments beside the
base, and what differs between runs.

Read by :mod:`ablate.core.reports`, never reading it (tests/guards/test_layering.py).
"""
