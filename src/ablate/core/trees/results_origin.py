"""Which name a results folder was made under, and from which working directory.

Snakemake keeps its record of each finished job (``.snakemake/metadata/``: its params, code and
inputs, which decide what an edit reruns) in the working directory, keyed by the output's path as
the rules wrote it; the model cards and records name files by that path too. The same folder
reached under another name (moved or renamed, a link to it, another ``results:`` spelling) had
no record of any job: an edit of parameters reran nothing, silently, while a job that did run
failed reading a model card that named the old path, and did so after Snakemake had removed its
finished result; every rerun failed the same way. The same holds for a folder made by runs of
another working directory (two checkouts with one ``results:`` folder).

So a run writes :data:`ORIGIN_NAME` into the folder: the ``results:`` value it ran under
(normalized: ``./results`` is ``results``) and its working directory. Every invocation, a dry
run too, checks it at parse time, before any job: another name is refused in one line, and so is
another working directory that holds no Snakemake record of the folder's files (a copy of a
whole checkout, or one moved, carries its records along and is taken).

Pure Python (no torch): the Snakefile imports it at parse time.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ablate.core.config import normalized
from ablate.core.outputs import io

#: The folder's origin record, in the results folder.
ORIGIN_NAME = ".origin.json"


def resolved(results: str | os.PathLike) -> str:
    """The folder ``results`` is, every symlink on its way resolved
    (:func:`~ablate.core.config.normalized` where there is none), relative to the working
    directory as ``results`` is (an absolute one stays absolute): what a check of where a results
    folder lies judges, so a link to an experiment's tree (``ln -s results/exp/lr lnk``) is that
    tree."""
    real = os.path.realpath(results)
    return real if os.path.isabs(results) else os.path.relpath(real)


def name_error(results: str) -> str | None:
    """One line when ``results`` is the working directory or a folder above it: every output,
    log and record would lie among the workflow's own files; None otherwise."""
    if all(part == os.pardir for part in Path(normalized(results)).parts):  # ".": no parts
        return (
            f"invalid config at results: {results!r} is the workflow's own folder (or one above "
            "it): outputs, logs and records would lie among its files; name a folder of its own "
            "(results: results)"
        )
    return None


def snakemake_records(root: Path) -> Iterator[tuple[str, Path]]:
    """(path, file) of each record in a Snakemake persistence folder (``.snakemake/metadata``,
    ``.snakemake/incomplete``): the file's name is its path's urlsafe base64, a long one split
    into ``@``-prefixed folder names."""
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
    """One line when the folder ``results`` was made under another name, or by runs of another
    working directory whose Snakemake records this one lacks; None when it may be used here."""
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
