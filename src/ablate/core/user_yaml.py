"""YAML a user typed, read as a config holds it: config files (``--configfile``, an overlay,
``ablate exp run --file``), a ``--set KEY=VALUE``'s value, a task's YAML. One reader for them all
(JSON: :func:`load_json`), so each refuses in one line naming the file or value what YAML would
misread silently or a traceback would report.

Pure Python (no torch): the Snakefile reads every config file through it at parse time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config value that the schema cannot express; the message names the key path."""


def load_yaml(source: str | bytes, where: str, *, value: bool = False) -> Any:
    """The content of YAML a user typed; ConfigError, one line naming ``where``, for bytes that
    are not UTF-8, a syntax error, a key written twice in one mapping (PyYAML keeps the second
    silently; overriding a key merged in by ``<<: *anchor`` is YAML's own override) or a tag
    beyond plain YAML's (no object is built from typed text). ``value``: ``source`` is one value
    typed on a command line (a position is its column)."""
    import yaml

    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{where}: not UTF-8 text (byte {exc.start} is {source[exc.start]:#04x}; a "
                "binary file?): give a YAML file"
            ) from None
    # libyaml's parser where PyYAML has it: ~9x faster, and the Snakefile reads every config file
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(source)
    try:
        root = loader.get_single_node()
        twice = None if root is None else _written_twice(root, loader, (), set())
        content = None if root is None or twice else loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_line(where, exc, value=value)) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a tagged scalar: !!int abc
        raise ConfigError(f"{where}: a value YAML cannot read ({exc}): fix it") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deep for YAML to read: flatten it") from None
    finally:
        loader.dispose()
    if twice:
        key, first, second = twice
        at = "" if value else f", at lines {first} and {second}"
        raise written_twice(where, ".".join(map(str, key)), "YAML", at)
    return content


def written_twice(where: str, key: str, reader: str, at: str = "") -> ConfigError:
    """The refusal of a ``key`` written twice in one mapping of ``where``."""
    return ConfigError(
        f"{where}: the key {key} is written twice{at} ({reader} would keep the second "
        "silently): delete one of them"
    )


def load_json(source: str | bytes, where: str) -> Any:
    """The value of JSON a user typed; ConfigError for a key written twice in one object (Python's
    reader keeps the second silently), ``ValueError`` for text that is no JSON."""
    import json

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise written_twice(where, key, "JSON")
            seen.add(key)
        return dict(pairs)

    return json.loads(source, object_pairs_hook=unique)


def load_config_file(path: str | os.PathLike) -> Any:
    """A YAML (or JSON) config file's content, read by :func:`load_yaml`."""
    return load_yaml(Path(path).read_bytes(), str(path))


def config_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """A config file's keys; ConfigError when it holds a list or a single value."""
    content = load_config_file(path)
    if content is not None and not isinstance(content, dict):
        raise ConfigError(
            f"{path}: holds {_kind(content)}, not config keys: a config file is a mapping of "
            "`key: value` lines (results: results)"
        )
    return content or {}


def _kind(content: Any) -> str:
    if isinstance(content, list):
        return f"a list of {len(content)} item{'s' * (len(content) != 1)}"
    return f"the single value {' '.join(repr(content).split())[:60]}"


#: How a YAML error of each kind (its class name) is fixed; a syntax error's by default.
_YAML_FIXES = {
    "ConstructorError": "write a plain YAML value there, without the tag (a config holds no "
    "Python objects or custom tags)",
    "ComposerError": "define the anchor (&name) before its alias (*name), or quote the text",
}
_YAML_SYNTAX_FIX = "check the indentation (spaces, no tabs), brackets and quotes there"
_YAML_VALUE_FIX = "close its brackets and quotes, or quote the whole value as text"


def yaml_error_line(where: str | os.PathLike, exc: Exception, *, value: bool = False) -> str:
    """One line for a YAML error in ``where`` (a file, or a typed ``value``): ``FILE:LINE:COLUMN:
    what is wrong``, where the mapping or list it was reading began, and how to fix it."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:  # a reader error: a character YAML takes in no text
        what = getattr(exc, "reason", None) or " ".join(str(exc).split())
        char, pos = getattr(exc, "character", None), getattr(exc, "position", None)
        code = ord(char) if isinstance(char, str) and len(char) == 1 else char
        at = f" (U+{code:04X} at character {pos + 1})" if isinstance(code, int) else ""
        return f"{where}: not YAML text: {what}{at}: a binary file? give YAML text"
    what = getattr(exc, "problem", None) or "a YAML syntax error"
    context, at = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and at is not None and (at.line, at.column) != (mark.line, mark.column):
        line = "" if value else f"line {at.line + 1}, "
        what += f" ({context} from {line}column {at.column + 1})"
    fix = _YAML_FIXES.get(type(exc).__name__, _YAML_VALUE_FIX if value else _YAML_SYNTAX_FIX)
    if value:  # one line typed: a column, or its end (a bracket left open)
        place = f"column {mark.column + 1}" if mark.line == 0 else "its end"
        return f"{where}: not valid YAML at {place}: {what}; {fix}"
    return f"{where}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {what}; {fix}"


def _written_twice(
    node: Any, loader: Any, where: tuple, seen: set[int]
) -> tuple[tuple, int, int] | None:
    """(key path, first line, second line) of the first key written twice under ``node``."""
    import yaml

    if id(node) in seen:  # an alias: its node was looked at where its anchor is
        return None
    seen.add(id(node))
    children: list[tuple[Any, tuple]] = []
    if isinstance(node, yaml.MappingNode):
        lines: dict[Any, int] = {}
        for key_node, value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                children.append((value, where))
                continue
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in lines:
                    return (*where, key), lines[key], line
                lines[key] = line
            except TypeError:  # an unhashable key: the loader itself refuses it
                pass
            children.append((value, (*where, key)))
    elif isinstance(node, yaml.SequenceNode):
        children = [(item, (*where, i)) for i, item in enumerate(node.value)]
    for child, at in children:
        if twice := _written_twice(child, loader, at, seen):
            return twice
    return None
