"""Which name a results folder was made under, and from which working directory.

Snakemake's records of finished jobs (``.snakemake/metadata/``, which decide what an edit reruns)
and the model cards name files by their path: under another name, or from a working directory
without those records, an edit reran nothing and a rerun job failed (docs/reliability.md, [F49]).
So a run records the folder's name and working directory, and every invocation checks it at parse
time. Pure Python (no torch): the Snakefile imports it at parse time.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ablate.core.config import normalized
from ablate.core.outputs import io

ORIGIN_NAME = ".origin.json"


def resolved(results: str | os.PathLike) -> str:
    """The folder ``results`` is, symlinks resolved, relative as ``results`` is."""
    real = os.path.realpath(results)
    return real if os.path.isabs(results) else os.path.relpath(real)


def name_error(results: str) -> str | None:
    """One line when ``results`` is the working directory or above it; None otherwise."""
    if all(part == os.pardir for part in Path(normalized(results)).parts):  # ".": no parts
        return (
            f"invalid config at results: {results!r} is the workflow's own folder (or one above "
            "it): outputs, logs and records would lie among its files; name a folder of its own "
            "(results: results)"
        )
    return None


def snakemake_records(root: Path) -> Iterator[tuple[str, Path]]:
    """(path, file) of each record in a Snakemake persistence folder."""
    for dirpath, _, files in os.walk(root):
        rel = Path(dirpath).relative_to(root).parts
        for f in files:
            if f == "migration_underway":
                continue
            chunks = [p.removeprefix("@") for p in rel] + [f]
            try:
                key = base64.urlsafe_b64decode("".join(chunks)).decode()
            except ValueError:
                continue
            yield os.path.normpath(key), Path(dirpath) / f


def read(results: str) -> dict | None:
    try:
        origin = io.load_json(Path(results) / ORIGIN_NAME)
    except (OSError, ValueError):
        return None
    return origin if isinstance(origin, dict) else None


def record(results: str, workdir: str | os.PathLike) -> None:
    """Note that a run of ``workdir`` uses the folder under the name ``results`` (at its start)."""
    origin = {"results": normalized(results), "workdir": str(Path(workdir).resolve())}
    if read(results) != origin:
        io.write_text(Path(results) / ORIGIN_NAME, json.dumps(origin, sort_keys=True) + "\n")


def origin_error(results: str, workdir: str | os.PathLike) -> str | None:
    """One line when ``results`` was made under another name or working directory, or None."""
    origin = read(results)
    if origin is None:
        return None  # a new folder, or one made before its origin was recorded
    was, where = origin.get("results"), origin.get("workdir")
    here = str(Path(workdir).resolve())
    if was != normalized(results):
        return (
            f"{results}/ was made as {was}/ (in {where}; {Path(results) / ORIGIN_NAME}): "
            "Snakemake's records of its jobs, which decide what an edit reruns, and its model "
            f"cards name it so, and under another name an edit reruns nothing and a rerun job "
            f"fails; use it under its name (`results: {was}`, moving it back if it was moved), "
            "or give this configuration a new results folder"
        )
    # Snakemake in workdir recorded no finished job with an output in results
    inside, metadata = normalized(results) + os.sep, Path(workdir) / ".snakemake" / "metadata"
    if where != here and not any(p.startswith(inside) for p, _ in snakemake_records(metadata)):
        return (
            f"{results}/ was made by runs in {where}, whose Snakemake records of its jobs "
            f"(.snakemake/metadata) decide what an edit reruns; this working directory ({here}) "
            "has none of them: run it from there, or give this configuration its own results "
            "folder"
        )
    return None
