"""Every private name of an upstream library the package uses, and each workaround of its
behaviour, one module per library:
:mod:`~ablate.upstream.pytorch` (torch), :mod:`~ablate.upstream.hf` (transformers),
:mod:`~ablate.upstream.lmeval` (lm-eval), :mod:`~ablate.upstream.smk` (Snakemake) and
:mod:`~ablate.upstream.executors` (Snakemake's remote executors, the executor plugins' base).

Each module's docstring numbers its touches, each with a test in ``tests/upstream/`` that fails
when the pinned library changes it; tests/guards/test_upstream_touches.py fails where one is used
outside this package (the executor and logger plugins, packages of their own, keep their own
lists). The modules are not named after their libraries so that none shadows one.
"""
