"""What the runs report: STATUS.md and the Snakemake report's views of it, claims
and the statistics behind them, tables for a paper, expected results, live tracking.

Modules: ``status`` (STATUS.md), ``status_report`` (the report's views of STATUS),
``report_graph`` (the report's rule graph), ``claims`` (a study's claims from its results),
``seeds`` (the spread over seeds), ``stats`` (paired comparisons), ``latex`` (booktabs tables),
``expected`` (``ablate expected``), ``tracking`` (TensorBoard and MLflow).
"""
