"""Config helpers shared by both studies: stable parameter trees, the config error type (read
from :mod:`ablate.core.user_yaml`, which raises it), the one-line message for a schema violation,
and the pipeline schema's defaults for the library's own command lines.

Pure Python (no torch): the Snakefile imports it at parse time, and a no-op rerun must stay fast.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import functools
import math
import os
import re
from pathlib import Path
from typing import Any

from ablate.core.user_yaml import ConfigError, config_mapping, load_config_file


def schema_path(package: str, name: str = "config") -> Path:
    """The schema ``<name>.schema.yaml`` shipped as package data (an installed wheel has it too)."""
    from importlib.resources import files

    return Path(str(files(package).joinpath(name + ".schema.yaml")))


def sorted_tree(obj: Any) -> Any:
    """A copy with every mapping's keys sorted: params compare by repr, so order must not vary."""
    if isinstance(obj, dict):
        return {k: sorted_tree(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [sorted_tree(v) for v in obj]
    return obj


def config_files_error(paths: list[str | os.PathLike], reserved: dict[str, str]) -> str | None:
    """One line for the first config file that :func:`config_mapping` refuses or that sets a key
    of ``reserved`` (key -> why no config file sets it); None when every one is sound."""
    for path in paths:
        try:
            content = config_mapping(path)
        except ConfigError as exc:
            return str(exc)
        for key in sorted(set(reserved) & set(content)):
            return f"{path}: {key}: {reserved[key]}"
    return None


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"the schema {path} is missing: the package is incomplete (reinstall it)")
    return load_config_file(path)


@functools.cache
def config_schema() -> dict[str, Any]:
    """The pipeline's config schema, the one place its keys and defaults are stated: the core
    part, each registered study's part under its name and the plan's block as ``plan``."""
    from ablate import studies

    schema = _load(schema_path("ablate.core"))
    plan = _load(schema_path("ablate.core", "plan"))
    plan.pop("$schema")
    schema["properties"]["plan"].update(plan)
    for node in (schema, plan):  # `studies` and `plan.studies` name registered studies
        node["properties"]["studies"]["items"]["enum"] = list(studies.STUDIES)
    schema["$defs"]["attn_implementation"]["enum"] += list(studies.attention_backends())
    schema["allOf"] = []
    for study, package in studies.STUDIES.items():
        part = _load(schema_path(package))
        for name, node in part.pop("$defs", {}).items():
            if name in schema["$defs"]:
                raise ConfigError(f"{study}'s config schema redefines $defs/{name}")
            schema["$defs"][name] = node
        schema["properties"][study] = part
        listed = {"properties": {"studies": {"contains": {"const": study}}}}
        schema["allOf"].append({"if": listed, "then": {"required": [study]}})
    return schema


def validator(schema: dict[str, Any], fill_defaults: bool = False) -> Any:
    """The one jsonschema validator (the config schema's draft) of ``schema``; ``fill_defaults``
    sets each missing property's default as it validates."""
    return _validator_class(fill_defaults)(schema)


@functools.cache
def _validator_class(fill_defaults: bool) -> Any:
    """The class of :func:`validator`, built once a process: building it (jsonschema's
    ``extend``) cost 1.7 ms, and a parse of the Snakefile asked for it about 60 times (a study's
    grid entries, each resolved twice), every ``snakemake`` start."""
    import jsonschema

    cls = jsonschema.validators.validator_for(config_schema())
    cls = jsonschema.validators.extend(cls, type_checker=_strict_types(cls.TYPE_CHECKER))
    if fill_defaults:
        properties = cls.VALIDATORS["properties"]

        def set_defaults(validator, props, instance, schema):
            if isinstance(instance, dict):
                for key, sub in props.items():
                    if "default" in sub:
                        instance.setdefault(key, copy.deepcopy(sub["default"]))
            yield from properties(validator, props, instance, schema)

        cls = jsonschema.validators.extend(cls, {"properties": set_defaults})
    return cls


def _strict_types(checker: Any) -> Any:
    """jsonschema's type checker with its two number types as a run can use them: ``integer``
    is an ``int`` only (jsonschema takes ``8.0``, which ``range`` and tensor shapes refuse, late,
    in a job), ``number`` a finite one (YAML's ``.nan`` and ``.inf`` pass every bound, since
    every comparison with NaN is false, and reach the optimizer or a claim's margin)."""

    def integer(_, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def finite(_, value: Any) -> bool:
        # an int is finite (math.isfinite cannot take one beyond a float's range)
        return checker.is_type(value, "number") and (isinstance(value, int) or math.isfinite(value))

    return checker.redefine_many({"integer": integer, "number": finite})


def check_set_keys(entries: list[str], hint: str = "") -> None:
    """ConfigError when two ``--set KEY=VALUE`` entries set one key, or one a key inside another's
    (the last would win silently); ``hint``: how to give several values, where the command can."""
    seen: dict[str, str] = {}
    for entry in entries:
        key = entry.partition("=")[0].strip()
        for other, was in seen.items():
            if key == other or key.startswith(other + ".") or other.startswith(key + "."):
                same = "one key" if key == other else "a key and a key inside it"
                raise ConfigError(
                    f"--set {was} and --set {entry} set {same}: give each key once{hint}"
                )
        seen[key] = entry


def whole_number(minimum: int) -> Any:
    """An argparse ``type`` for a count option: a whole number of at least ``minimum`` (``int``
    takes ``-5``, which a count or a limit reads as something else)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum}: give {minimum} or more")
        return value

    return parse


def finite_float(text: str) -> float:
    """An argparse ``type`` for a number option: a finite float (``float`` takes ``nan`` and
    ``inf``, which pass every bound, as :func:`validator` refuses them in a config)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number: write one")
    return value


def validate_config(config: dict[str, Any]) -> None:
    """Check a whole pipeline config against :func:`config_schema`, filling in every default;
    raises the first ``jsonschema.ValidationError`` (:func:`schema_error` words it)."""
    from ablate import studies

    if error := non_text_key(config):
        raise error
    if "studies" not in config:
        config["studies"] = [s for s in studies.STUDIES if s in config]
    for error in validator(config_schema(), fill_defaults=True).iter_errors(config):
        raise error
    config["plan"].setdefault("studies", studies.planned_by_default(config["studies"]))
    config["results"] = normalized(config["results"])


def normalized(results: str) -> str:
    """The one spelling of a ``results:`` value (``./results`` is ``results``): Snakemake keys its
    record of a job by the output's path as written (:mod:`ablate.core.trees.results_origin`)."""
    return os.path.normpath(results)


def non_text_key(node: Any, path: tuple = ()) -> Any:
    """A ``jsonschema.ValidationError`` for the first key of a mapping that is not text, or None.
    YAML reads ``1:``, ``2026-11-28:``, ``no:`` or ``null:`` as a number, a date, a boolean or
    nothing: a schema checks the names it declares as text only (its ``pattern``), so such a key
    would pass it and reach code that needs text."""
    from jsonschema import ValidationError

    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return None
    for key, value in items:
        if isinstance(node, dict) and not isinstance(key, str):
            kind = (
                "null (YAML reads null, ~ or no key so)" if key is None
                else "a boolean (YAML reads yes/no, true/false, on/off so)" if isinstance(key, bool)
                else "a number" if isinstance(key, (int, float))
                else f"a {type(key).__name__}"
            )  # fmt: skip
            shown = key.isoformat() if hasattr(key, "isoformat") else key
            return ValidationError(
                f"the key {shown} is {kind}, not a name: quote it as you wrote it ('{shown}': ...)",
                path=path,
                validator="propertyNames",
            )
        if found := non_text_key(value, (*path, key)):
            return found
    return None


def subschema(pointer: str) -> dict[str, Any]:
    """A copy of the schema node at ``pointer`` ("$defs/finetune_params", "properties/tracking"),
    carrying the schema's ``$defs`` so that its ``$ref``s resolve on their own."""
    node: Any = config_schema()
    for part in pointer.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"the config schema has no node {pointer!r}")
        node = node[part]
    return {"$defs": copy.deepcopy(config_schema()["$defs"]), **copy.deepcopy(node)}


def defaults_of(schema: dict[str, Any]) -> dict[str, Any]:
    """``{key: default}`` of an object schema, filled in as the config's are (through ``$ref``, so
    a study's extension of a core node has the core's defaults too)."""
    out: dict[str, Any] = {}
    for _ in validator(schema, fill_defaults=True).iter_errors(out):
        pass  # only the filling counts: an empty object may lack a required key
    return out


def schema_defaults(pointer: str) -> dict[str, Any]:
    """The defaults of the object section at ``pointer`` of the config schema."""
    return defaults_of(subschema(pointer))


def check(obj: Any, schema: dict[str, Any], what: str) -> None:
    """Validate ``obj`` against a :func:`subschema`; the error names ``what`` and the bad key."""
    import jsonschema

    error = jsonschema.exceptions.best_match(validator(schema).iter_errors(obj))
    if error is not None:
        key = ".".join(map(str, error.absolute_path))
        raise ConfigError(f"invalid {what}{' ' + key if key else ''}: {error_words(error)}")


def configfile_error(
    configfiles: list[str | os.PathLike], results_dir: str | os.PathLike
) -> str | None:
    """One line when a ``--configfile`` is a file under the results folder (a target typed after
    it). A missing file never gets here: Snakemake 9.27 opens every config file first."""
    root = Path(results_dir).resolve()
    outputs = [f for f in configfiles if Path(f).resolve().is_relative_to(root)]
    if not outputs:
        return None
    targets = " ".join(os.path.relpath(f) for f in outputs)
    configs = " ".join(os.path.relpath(f) for f in configfiles if f not in outputs)
    return _targets_first(targets, "an output of this workflow, not a config file", configs)


def _targets_first(targets: str, what: str, configs: str, hint: str = "") -> str:
    """The refusal of ``--configfile`` files that may be targets, with the command to type."""
    return (
        f"--configfile {targets}: {what} (a target typed after --configfile is read as one more "
        f"config file); {hint}put targets first: snakemake [options] {targets} --configfile "
        f"{configs or 'FILE'} (or write --configfile=FILE, which takes one file)"
    )


def typed_config_args(entries: list[str] | None) -> dict[str, Any]:
    """The nested values and booleans of ``--config KEY=VALUE`` entries, typed as a config file
    types them, to merge over the config: Snakemake reads a nested value with YAML's base loader,
    which leaves every leaf text (the schema then refuses ``'5'``), and takes only ``True`` and
    ``False`` as a boolean (``allow_cpu=true`` stayed ``'true'``)."""
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
        if isinstance(value, (dict, list, bool)):
            typed[key] = value
    return typed


_CONFIGFILE_FLAGS = ("--configfile", "--configfiles")
#: The embedded default's config file: Snakemake reads it unless --configfile names others (the
#: Snakefile's ``configfile:``), and so do the library's commands.
DEFAULT_CONFIGFILE = "config/config.yaml"
#: Suffixes of a config file: one Snakemake cannot read has a syntax error, not a target's name.
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def add_configfiles_option(parser: argparse.ArgumentParser, files: str) -> None:
    """A command's ``--configfile``/``--configfiles FILE ...``, as Snakemake takes them, with
    :data:`DEFAULT_CONFIGFILE` unless given; ``files`` says whose (``the run's config files``)."""
    parser.add_argument(
        *_CONFIGFILE_FLAGS,
        nargs="+",
        default=[DEFAULT_CONFIGFILE],
        metavar="FILE",
        help=f"{files}, as given to snakemake (later ones merged over earlier ones; default "
        f"{DEFAULT_CONFIGFILE})",
    )


def configfile_args(argv: list[str]) -> list[str]:
    """The files a ``snakemake`` command line gives ``--configfile``, as Snakemake's parser reads
    them."""
    files: list[str] = []
    taking = False
    for word in argv:
        flag, eq, value = word.partition("=")
        if word.startswith("-"):
            taking = word in _CONFIGFILE_FLAGS
            if eq and flag in _CONFIGFILE_FLAGS:
                files.append(value)
        elif taking:
            files.append(word)
    return files


def unreadable_configfile_error(argv: list[str]) -> str | None:
    """One line for a ``--configfile`` of ``argv`` that Snakemake cannot read as a config (a
    target typed after it, a missing file, a syntax error); None when each reads. Snakemake
    stops on one with a traceback before any workflow file runs, so the workflow profile runs
    this first."""
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
                if Path(f).suffix.lower() in _CONFIG_SUFFIXES:  # a config: blame its syntax
                    try:
                        config_mapping(f)
                    except ConfigError as exc:
                        return str(exc)
        configs = " ".join(c for c in files if c != f)
        return _targets_first(f, what, configs, "if it is a target, ")
    return None


def schema_error(error: Any) -> str:
    """One line for a jsonschema ``ValidationError`` of the config: where and what is wrong."""
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    return f"invalid config at {where}: {error_words(error)}"


#: The schema keywords that say in words what a node's ``pattern`` admits and why its ``not``
#: refuses a value: a refusal names them, not the regex or the schema it matched.
PATTERN_MEANING = "patternMeaning"
_NOT_MEANING = "notMeaning"
#: A failed schema keyword -> the keyword beside it that says the refusal in words.
MEANINGS = {"pattern": PATTERN_MEANING, "not": _NOT_MEANING}


def error_words(error: Any) -> str:
    """What is wrong, for a jsonschema ``ValidationError``: the schema's message (a failed
    ``pattern`` or ``not`` in its node's :data:`MEANINGS` words) and what to write instead."""
    message = error.message
    word = MEANINGS.get(error.validator)
    means = error.schema.get(word) if word and isinstance(error.schema, dict) else None
    if means:
        message = f"{error.instance!r} is not {means}"
    if error.validator == "type":
        bounds = error.schema if isinstance(error.schema, dict) else {}
        hint = number_hint(error.instance, error.validator_value, bounds)
    else:
        hint = key_hint(error)
    return message + (f": {hint}" if hint else "")


def key_hint(error: Any) -> str | None:
    """A "did you mean" for an unknown key: the closest keys the schema allows there, or None."""
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


#: The largest whole number a float holds exactly: a bigger one is not the number typed.
_EXACT_FLOAT = 2**53


def whole_hint(number: float, bounds: dict[str, Any]) -> str:
    """``write N`` for a float that is the whole number N the key may take (within ``bounds``, and
    exact: 1.0e+300 is no number anyone typed); else the range of whole numbers it takes."""
    low, high = bounds.get("minimum"), bounds.get("maximum")
    if not number.is_integer():
        return "write a whole number"
    in_bounds = (low is None or number >= low) and (high is None or number <= high)
    if abs(number) < _EXACT_FLOAT and in_bounds:
        return f"write {int(number)}"
    if low is not None and high is not None:
        return f"write a whole number from {low} to {high}"
    if low is not None:
        return f"write a whole number of at least {low}"
    return "write a whole number" + (f" of at most {high}" if high is not None else "")


# YAML 1.1 (PyYAML, hence Snakemake) reads a float only with a dot in the mantissa and a sign in
# the exponent: 1.0e-3 and 1.0e+3 are numbers, 1e-3 and 1.0e3 are text.
_SCIENTIFIC = re.compile(r"([-+]?)([0-9_]*)(?:\.([0-9_]*))?[eE]([-+]?)([0-9]+)")


def number_hint(
    value: Any, wanted: str | list[str], bounds: dict[str, Any] | None = None
) -> str | None:
    """What to write for ``value``, which the schema did not take as ``wanted`` (a type or list),
    where it reads as a number within ``bounds`` (the node's ``minimum`` and ``maximum``)."""
    types = {wanted} if isinstance(wanted, str) else set(wanted)
    if not types & {"number", "integer"}:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return "write a finite number (YAML's .nan and .inf are no value a run can use)"
        if "number" in types:
            return None
        whole = whole_hint(value, bounds or {})
        return f"{whole} (the key takes a whole number, written without a decimal point)"
    if not isinstance(value, str):
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
        whole = whole_hint(number, bounds or {})
        what = "a whole number, " if whole[6:7].isdigit() else ""  # "write 5" names no kind
        return f"{whole} ({what}without quotes or exponent)"
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
