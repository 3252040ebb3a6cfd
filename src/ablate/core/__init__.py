"""What both studies share and no study is named in: provenance, checkpoints, atomic I/O, model
loading, training, STATUS, planner (the module map: docs/design.md)."""
