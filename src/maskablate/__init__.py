"""maskablate: attention-mask ablation studies for causal LMs (library behind the pipeline)."""

__version__ = "0.1.0"
