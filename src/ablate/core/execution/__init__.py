"""Running jobs: a GPU per job and how busy it was, jobs of many processes,
interrupts, the checks before any job, the terminal's lines and what rented machines cost.

Its modules: docs/design.md's module map (``ablate map``).
"""
