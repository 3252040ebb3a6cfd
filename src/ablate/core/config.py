"""Config helpers shared by both studies: stable parameter trees, the config error type, the
one-line message for a schema violation, and the pipeline schema's defaults for the library's own
command lines.

Pure Python (no torch): the Snakefile imports it at parse time, and a no-op rerun must stay fast.
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
import os
import re
from pathlib import Path
from typing import Any

#: The pipeline's config schema: the one place its defaults are stated. The library reads the
#: defaults of a section here when it runs without the pipeline (``ablate train``, ``ablate data``).
CONFIG_SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value that the schema cannot express; the message names the key path."""


def sorted_tree(obj: Any) -> Any:
    """A copy with every mapping's keys sorted: params compare by repr, so order must not vary."""
    if isinstance(obj, dict):
        return {k: sorted_tree(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [sorted_tree(v) for v in obj]
    return obj


@functools.cache
def _schema() -> dict[str, Any]:
    import yaml

    if not CONFIG_SCHEMA.is_file():
        raise ConfigError(
            f"the config schema {CONFIG_SCHEMA} is missing: the library reads its defaults there "
            "(run from a checkout of the repository, or an editable install)"
        )
    return yaml.safe_load(CONFIG_SCHEMA.read_text())


def subschema(pointer: str) -> dict[str, Any]:
    """A copy of the schema node at ``pointer`` ("$defs/finetune_params", "properties/tracking"),
    carrying the schema's ``$defs`` so that its ``$ref``s resolve on their own."""
    node: Any = _schema()
    for part in pointer.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{CONFIG_SCHEMA.name} has no node {pointer!r}")
        node = node[part]
    return {"$defs": copy.deepcopy(_schema()["$defs"]), **copy.deepcopy(node)}


def defaults_of(schema: dict[str, Any]) -> dict[str, Any]:
    """``{key: default}`` of an object schema's properties (keys without a default left out)."""
    return {
        k: copy.deepcopy(p["default"])
        for k, p in schema.get("properties", {}).items()
        if "default" in p
    }


def schema_defaults(pointer: str) -> dict[str, Any]:
    """The defaults of the object section at ``pointer`` of the config schema."""
    return defaults_of(subschema(pointer))


def check(obj: Any, schema: dict[str, Any], what: str) -> None:
    """Validate ``obj`` against a :func:`subschema`; the error names ``what`` and the bad key."""
    import jsonschema

    validator = jsonschema.validators.validator_for(_schema())(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        key = ".".join(map(str, error.absolute_path))
        hint = key_hint(error)
        raise ConfigError(
            f"invalid {what}{' ' + key if key else ''}: {error.message}"
            + (f": {hint}" if hint else "")
        )


def configfile_error(
    configfiles: list[str | os.PathLike], results_dir: str | os.PathLike
) -> str | None:
    """One line when a ``--configfile`` is a file under the results folder: a target typed after
    ``--configfile``, which takes several files, so Snakemake read the target as one more config
    (a JSON record merges its keys into the config). None when every file is outside it.

    A file that does not exist (a missing config, or a target not made yet) never gets here:
    Snakemake 9.27 opens every config file before it reads the workflow, and reports a missing one
    with its own traceback (``FileNotFoundError ... '<path>'``)."""
    root = Path(results_dir).resolve()
    outputs = [f for f in configfiles if Path(f).resolve().is_relative_to(root)]
    if not outputs:
        return None
    targets = " ".join(os.path.relpath(f) for f in outputs)
    configs = " ".join(os.path.relpath(f) for f in configfiles if f not in outputs)
    return (
        f"--configfile {targets}: an output of this workflow, not a config file (a target typed "
        f"after --configfile is read as one more config file); put targets first: "
        f"snakemake [options] {targets} --configfile {configs or 'FILE'} "
        f"(or write --configfile=FILE, which takes one file)"
    )


def typed_config_args(entries: list[str] | None) -> dict[str, Any]:
    """The nested values of ``--config KEY=VALUE`` entries, typed as a config file types them.

    Snakemake tries a top-level value as int, float and bool, but reads a nested one
    (``mask={finetune: {defaults: {max_steps: 5}}}``) with YAML's base loader, which types
    nothing: every leaf is text, and the schema then refuses ``'5'``. Merged over the config
    (``snakemake.utils.update_config``), these replace those leaves with YAML's own reading of the
    same text. Top-level scalars are left out: Snakemake has typed them already."""
    import yaml

    typed: dict[str, Any] = {}
    for entry in entries or ():
        key, eq, text = str(entry).partition("=")
        if not eq:
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # Snakemake kept it as text; the schema names it if that is wrong
        if isinstance(value, (dict, list)):
            typed[key] = value
    return typed


CONFIGFILE_FLAGS = ("--configfile", "--configfiles")


def configfile_args(argv: list[str]) -> list[str]:
    """The files a ``snakemake`` command line gives ``--configfile``: every word after the flag
    up to the next option (the flag takes several, as Snakemake's parser reads it), and the one
    of ``--configfile=FILE``."""
    files: list[str] = []
    taking = False
    for word in argv:
        flag, eq, value = word.partition("=")
        if word.startswith("-"):
            taking = word in CONFIGFILE_FLAGS
            if eq and flag in CONFIGFILE_FLAGS:
                files.append(value)
        elif taking:
            files.append(word)
    return files


def unreadable_configfile_error(argv: list[str]) -> str | None:
    """One line for a ``--configfile`` of ``argv`` that Snakemake cannot read as a config: a
    target typed after ``--configfile`` (a table, a picture) or a file that does not exist; None
    when each one reads as a mapping. Snakemake reads config files in its command line, before
    any workflow file runs, and stops there with a traceback (``UnicodeDecodeError``,
    ``FileNotFoundError``) or a line that names no file; the workflow profile
    (profiles/default/config.yaml) runs this while Snakemake reads it, before that."""
    from snakemake.common.configfile import load_configfile

    files = configfile_args(argv)
    for f in files:
        if not Path(f).is_file():
            what = "no such file"
        else:
            try:
                load_configfile(f)
                continue
            except Exception:  # noqa: BLE001 - whatever Snakemake would stop on
                what = "not a JSON or YAML config file"
        configs = " ".join(c for c in files if c != f)
        return (
            f"--configfile {f}: {what} (a target typed after --configfile is read as one more "
            f"config file); if it is a target, put targets first: snakemake [options] {f} "
            f"--configfile {configs or 'FILE'} (or write --configfile=FILE, which takes one file)"
        )
    return None


def schema_error(error: Any) -> str:
    """One line for a jsonschema ``ValidationError`` of the config: the key path, the schema's
    message and, for a number YAML read as text (``1e-3``), what to write instead."""
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    hint = number_hint(error.instance, error.validator_value) if error.validator == "type" else None
    hint = hint or key_hint(error)
    return f"invalid config at {where}: {error.message}" + (f": {hint}" if hint else "")


def key_hint(error: Any) -> str | None:
    """A "did you mean" for an unknown key (additional or unevaluated property): the closest
    keys the schema allows at that path; None when nothing is close."""
    if error.validator not in ("additionalProperties", "unevaluatedProperties"):
        return None
    if not isinstance(error.instance, dict):
        return None
    allowed = allowed_keys(error.schema)
    guesses = []
    for key in sorted(set(error.instance) - allowed):
        close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
        guesses += [f"did you mean {close[0]!r} for {key!r}?"] if close else []
    return "; ".join(guesses) or None


def allowed_keys(schema: dict[str, Any]) -> set[str]:
    """The property names an object schema declares, through its ``$ref`` (a pointer into the
    config schema) and its ``allOf`` / ``anyOf`` / ``oneOf`` branches."""
    keys = set(schema.get("properties", {}))
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        try:
            keys |= allowed_keys(subschema(ref[2:]))
        except KeyError:
            pass  # a pointer into another schema: its keys are not known here
    for branch in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(branch, []):
            keys |= allowed_keys(sub) if isinstance(sub, dict) else set()
    return keys


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
