"""The record layer: how every reader of a finished job's files reads them (STATUS, the planner,
the staleness summary, a study's tables, ``ablate diff``). One definition each, so two readers
never disagree about the same file.

A record is a job's output JSON object (a sidecar ``<table>.provenance.json`` is the block
itself); a reader never stops on an unreadable one.

No torch, no pandas: ``ablate status`` and the Snakefile read it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from typing import Any

from ablate.core.outputs import io
from ablate.core.outputs.provenance import BLOCK_FIELDS, changed_keys

#: Fields of a record (at any depth) that describe the run, not its result (a downstream job's own
#: key holds its config; a resume continues bit for bit, so where it resumed from is the run's).
RUN_FIELDS = frozenset(
    {
        "provenance",
        "run_id",
        "pretrain_run_id",
        "phases",
        "throughput",
        "wall_s",
        "wall_time_s",
        "train_s",
        "finished_at",
        "resolved_at",
        "resumed_from_step",
        "restored_from_step",
    }
)


def result_content(record: Any) -> Any:
    """A record (any JSON value) without its :data:`RUN_FIELDS`, at any depth."""
    if isinstance(record, dict):
        return {k: result_content(v) for k, v in record.items() if k not in RUN_FIELDS}
    if isinstance(record, list):
        return [result_content(v) for v in record]
    return record


def read_json(path: str | os.PathLike | None) -> dict | None:
    """A JSON object, or None when absent, unreadable or not an object."""
    try:
        data = io.load_json(path)
    except (OSError, TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def provenance_of(record: dict | None) -> dict:
    """The provenance block of a record: nested under ``provenance``, or the record itself when
    it is one (a sidecar: it has a ``config_hash``); {} for a record without one."""
    if not isinstance(record, dict):
        return {}
    prov = record.get("provenance")
    if isinstance(prov, dict):
        return prov
    return record if "config_hash" in record else {}


#: What every provenance block holds (``ablate.core.outputs.provenance.collect``): the run id and
#: the config hash a record is known by (``ablate diff`` names them in its header)
RECORD_PROVENANCE = ("run_id", "config_hash")


def record_lacks(record: Any) -> str | None:
    """What keeps a JSON object from being a job's record, in words (None: nothing): it needs a
    block with :data:`RECORD_PROVENANCE` and a result beside it; a sidecar, the whole block
    (``provenance.BLOCK_FIELDS``)."""
    prov = provenance_of(record)
    missing = [k for k in RECORD_PROVENANCE if not prov.get(k)]
    if missing:
        return f"no {' or '.join(missing)} in a provenance block"
    if prov is record:
        if missing := [k for k in BLOCK_FIELDS if k not in record]:
            fields = " and ".join(filter(None, [", ".join(missing[:-1]), missing[-1]]))
            return f"a provenance block alone, without the {fields} a job's block holds"
        return None
    if not result_content(record):
        return "no result beside its provenance block"
    return None


def recorded_config(path: str | os.PathLike | None) -> Any:
    """The config slice a record's provenance holds; None without one (not run yet, unreadable)."""
    return provenance_of(read_json(path)).get("config")


def config_changes(
    old: Any,
    new: Any,
    where: str | Mapping[str, str] = "",
    inherited: Mapping[str, str] | None = None,
) -> list[str]:
    """Why a finished job is stale: the changed keys (``where.key old -> new``) between the slice
    its record holds (``old``) and the slice now; [] when equal or nothing was recorded.

    ``where``: the slice's config path, or for a slice gathered from several places a map of its
    dotted keys to the path that sets each now (the longest prefix of a change names it).
    ``inherited``: keys the job's own place does not set now, each mapped to its path there; a
    change of one is named there, ``(now set by <where>)`` after it, since a recorded slice
    cannot tell an edit of the defaults from the variant's own key removed.
    """
    if old is None:
        return []
    if isinstance(where, str):
        return changed_keys(old, new, where)
    return [_located(change, where, inherited or {}) for change in changed_keys(old, new)]


def _located(change: str, where: Mapping[str, str], inherited: Mapping[str, str]) -> str:
    """``key old -> new`` with the key replaced by its config path under ``where`` (an
    ``inherited`` key: its own path, and where it is set now)."""
    key, rest = change.split(" ", 1)
    parts = key.split(".")
    for i in range(len(parts), -1, -1):
        prefix = ".".join(parts[:i])
        if prefix in where:
            path = ".".join(filter(None, [where[prefix], *parts[i:]]))
            if prefix not in inherited:
                return f"{path} {rest}"
            own = ".".join([inherited[prefix], *parts[i:]])
            return f"{own} {rest} (now set by {path})"
    return change


def benchmark_seconds(path: str | os.PathLike | None) -> float | None:
    """Wall seconds of one run of the job: the mean ``s`` over the rows of its benchmark file (TSV
    or ``.jsonl``; ``repeat(path, n)`` measures the job n times); None when absent, empty or
    unreadable."""
    try:
        with open(path, newline="") as f:
            if str(path).endswith(".jsonl"):
                rows = [io.parse_json(line, path) for line in f if line.strip()]
            else:
                rows = list(csv.DictReader(f, delimiter="\t"))
        seconds = [float(r["s"]) for r in rows]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return sum(seconds) / len(seconds) if seconds else None
