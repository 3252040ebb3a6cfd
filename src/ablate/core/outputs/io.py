"""Atomic file writes: a reader (or a rerun after a crash) sees the old file or the new one, never
half of one. Every output file of both studies is written through here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a sibling temporary path, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


#: Beside a record: a copy of every record written there, by run id, where `ablate diff OLD_ID
#: NEW_ID` reads one a rerun replaced.
HISTORY_DIR = "history"


def user_cache_dir() -> Path:
    """The user's cache of what derives from installed software (``$XDG_CACHE_HOME/ablate``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ablate"


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 1) -> Path:
    """JSON with sorted keys (stable diffs), other values as str; a record is also kept in
    :data:`HISTORY_DIR` beside it."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n"
    out = write_text(path, text)
    run_id = _record_run_id(obj)
    if run_id:
        write_text(history_path(out, run_id), text)
    return out


def history_path(path: str | os.PathLike, run_id: str) -> Path:
    """Where the record ``path`` of the run ``run_id`` is kept: ``history/<run_id>.<name>``."""
    return Path(path).parent / HISTORY_DIR / f"{run_id}.{Path(path).name}"


def keep_in_history(path: str | os.PathLike) -> None:
    """:func:`write_json`'s history copy of a record put in place by a copy (a cache restore)."""
    if run_id := file_run_id(path):
        write_text(history_path(path, run_id), Path(path).read_text())


#: The deepest nesting of JSON a run reads back (the pipeline's own files are under 10 levels).
MAX_JSON_DEPTH = 100


def json_depth(value: Any) -> int:
    """How deep ``value`` nests objects and arrays (a scalar 0), counted without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        items = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            todo.extend((x, depth + 1) for x in items if isinstance(x, dict | list))
    return deepest


def parse_json(text: str | bytes, where: str | os.PathLike) -> Any:
    """The JSON value ``text`` holds; ``where`` names it in the error. ``ValueError`` for text
    that is no JSON or nests deeper than :data:`MAX_JSON_DEPTH` (a ``RecursionError`` otherwise,
    in the parser or in a reader recursing through it: docs/reliability.md)."""
    too_deep = ValueError(f"{where} holds JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value


def load_json(path: str | os.PathLike) -> Any:
    """The JSON value of the file ``path`` (:func:`parse_json`); ``OSError`` where unreadable."""
    return parse_json(Path(path).read_text(), path)


def file_run_id(path: str | os.PathLike) -> str | None:
    """The run id of the record in the JSON file ``path``; None where none or unreadable."""
    try:
        return _record_run_id(load_json(path))
    except (OSError, ValueError):
        return None


def _record_run_id(obj: Any) -> str | None:
    """The run id of a provenance record (its ``provenance`` block's, or its own when it is one)."""
    if not isinstance(obj, dict):
        return None
    prov = obj.get("provenance", obj)
    if isinstance(prov, dict) and "config_hash" in prov and isinstance(prov.get("run_id"), str):
        return prov["run_id"]
    return None


def write_jsonl(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    return write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def write_frame(path: str | os.PathLike, df: Any, float_format: str | None = None) -> Path:
    """A pandas DataFrame as .csv (``float_format``: CSV only) or .parquet, without the index."""
    suffix = Path(path).suffix
    if suffix == ".csv":
        return atomic_write(
            path, lambda tmp: df.to_csv(tmp, index=False, float_format=float_format)
        )
    if suffix == ".parquet":
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    raise ValueError(f"write_frame: unknown table format {suffix!r} ({path})")
