"""A minimal third study, defined in the test suite: one rule, one job kind, one claim. It plugs
in the way docs/design.md ("Adding a study") says: its package (layout, status and plan parts,
its schema part, its rules) and one registry line, the entry point in
``ablate_toy-0.1.dist-info/entry_points.txt`` beside it, with no line of the core or of the
other studies changed. Does a coin of bias ``toy.bias`` come up heads more than half the time?
"""

from pathlib import Path

#: its rules, included by the Snakefile (ablate.studies.rule_files)
RULES = (str(Path(__file__).parent / "rules" / "toy.smk"),)


def hub_free(config: dict) -> bool:
    """Nothing of it is on the hub."""
    return True
