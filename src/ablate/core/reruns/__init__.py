"""What a rerun does with a finished job: restores it from the run cache, or names
the config keys that made it stale.

Its modules: docs/design.md's module map (``ablate map``).
"""
