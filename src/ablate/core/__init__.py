"""What both studies share and no study is named in, in subpackages by what they do.

Each subpackage and module: docs/design.md's module map (``ablate map``).
"""
