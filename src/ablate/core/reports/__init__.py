"""What the runs report: STATUS.md and the Snakemake report's views of it, claims
and the statistics behind them, results trees side by side, tables for a paper, expected results,
live tracking.

It reads :mod:`ablate.core.trees`, which never reads it (tests/guards/test_layering.py).
"""
