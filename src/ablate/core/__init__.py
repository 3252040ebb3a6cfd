"""What both studies share: provenance, checkpoints, atomic I/O, model loading, planner."""
