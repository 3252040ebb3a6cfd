"""Config helpers shared by both studies: stable parameter trees, the config error type and the
one-line message for a schema violation.

Pure Python (no torch): the Snakefile imports it at parse time, and a no-op rerun must stay fast.
"""

from __future__ import annotations

import math
import re
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


def schema_error(error: Any) -> str:
    """One line for a jsonschema ``ValidationError`` of the config: the key path, the schema's
    message and, for a number YAML read as text (``1e-3``), what to write instead."""
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    hint = number_hint(error.instance, error.validator_value) if error.validator == "type" else None
    return f"invalid config at {where}: {error.message}" + (f": {hint}" if hint else "")


# YAML 1.1 (PyYAML, hence Snakemake) reads a float only with a dot in the mantissa and a sign in
# the exponent: 1.0e-3 and 1.0e+3 are numbers, 1e-3 and 1.0e3 are text.
_SCIENTIFIC = re.compile(r"([-+]?)([0-9_]*)(?:\.([0-9_]*))?[eE]([-+]?)([0-9]+)")


def number_hint(value: Any, wanted: str | list[str]) -> str | None:
    """What to write for ``value``, a string the schema wanted as ``wanted`` (a JSON-schema type
    or list of them), when it reads as a number; None when it does not."""
    types = {wanted} if isinstance(wanted, str) else set(wanted)
    if not isinstance(value, str) or not types & {"number", "integer"}:
        return None
    text = value.strip()
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if "number" not in types:  # an integer key: the plain digits, if it is a whole number
        if not number.is_integer():
            return None
        write = str(int(number))
        return f"write {write} (a whole number, without quotes or exponent)"
    import yaml

    if isinstance(yaml.safe_load(text), (int, float)):
        return f"write {text} without quotes (quoted, it is text)"
    m = _SCIENTIFIC.fullmatch(text)
    if not m:
        return None
    sign, whole, frac, exp_sign, exp = m.groups()
    write = f"{sign}{whole or '0'}.{frac or '0'}e{exp_sign or '+'}{exp}"
    lacks = [
        *(["a dot"] if frac is None else []),
        *(["a sign in the exponent"] if not exp_sign else []),
    ]
    if not lacks:
        return None
    return f"write {write} (YAML reads {text} without {' and '.join(lacks)} as text)"
