"""Study-neutral training on the HF Trainer (modules: see docs/design.md)."""
