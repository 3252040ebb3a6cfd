"""The attention-mask ablation study: mask policies, evaluation, finetuning, recovery."""
