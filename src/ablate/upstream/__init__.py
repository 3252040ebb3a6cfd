"""Every private name of an upstream library the package uses, and each workaround of its
behaviour, one module per library:
:mod:`~ablate.upstream.pytorch` (torch), :mod:`~ablate.upstream.hf` (transformers),
:mod:`~ablate.upstream.lmeval` (lm-eval), :mod:`~ablate.upstream.smk` (Snakemake) and
:mod:`~ablate.upstream.executors` (Snakemake's remote executors, the executor plugins' base).

Each module's docstring numbers its touches: what is touched, why no public API serves, and the
pinned version it was written against (pyproject.toml); each touch has a test in
``tests/upstream/`` that fails when the pinned library changes what it relies on. Code elsewhere
calls the named functions here; ``tests/guards/test_upstream_touches.py`` fails where a private
upstream name is used outside this package. The modules are not named after their libraries so
that none shadows one. (The executor and logger plugins are packages of their own, which
Snakemake finds by name; each keeps its own numbered list: ``snakemake_executor_plugin_ablate_vast/
executor.py``, ``snakemake_executor_plugin_ablate_slurm``, ``snakemake_logger_plugin_ablate``.)
"""
