"""Config helpers shared by both studies: stable parameter trees and the config error type.

Pure Python (no torch): the Snakefile imports it at parse time, and a no-op rerun must stay fast.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config value that the schema cannot express; the message names the key path."""


def sorted_tree(obj: Any) -> Any:
    """A copy with every mapping's keys sorted: params compare by repr, so order must not vary."""
    if isinstance(obj, dict):
        return {k: sorted_tree(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [sorted_tree(v) for v in obj]
    return obj
