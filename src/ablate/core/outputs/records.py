"""The record layer: how every reader of a finished job's files reads them (STATUS, the planner,
the staleness summary, a study's tables, ``ablate diff``). One definition each, so two readers
never disagree about the same file.

- A **record** is a job's output JSON object (a summary.json, metrics.json, a model card, a
  provenance sidecar). :func:`read_json` returns it, or None when absent, unreadable or not an
  object: a reader never stops on one.
- Its **provenance** block (``ablate.core.outputs.provenance.collect``) is nested under
  ``provenance``, or the record is the block itself (a sidecar written beside a table, ``<table>.provenance.json``);
  :func:`provenance_of`. A JSON object without a block's run id and config hash, or without a
  result beside them (a sidecar: without the rest of the block a job writes), is no record
  (:func:`record_lacks`).
- **Benchmark seconds** (:func:`benchmark_seconds`): the wall seconds of ONE run of the job, the
  mean of the ``s`` column of its Snakemake benchmark file. Snakemake writes one row per run it
  measured (``benchmark: repeat(path, n)`` runs the job n times): each row is the same job
  measured again, so the mean is the job's duration, what a forecast of one run is compared with
  and what STATUS shows and adds up per job.
- **Staleness** by config (:func:`recorded_config`, :func:`config_changes`): a finished job is
  stale when the config slice its provenance recorded differs from the slice the config gives now;
  the changed keys say why (``key old -> new``).
- **Result content** (:func:`result_content`): what a record says the job computed, without the
  fields that describe the run that computed it (:data:`RUN_FIELDS`: run ids, timings,
  timestamps, the provenance block). The run cache keys a job by its inputs' result content, so
  a rerun of an upstream job that computes the same result keeps every key downstream.

No torch, no pandas: ``ablate status`` and the Snakefile read it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from typing import Any

from ablate.core.outputs import io
from ablate.core.outputs.provenance import BLOCK_FIELDS, changed_keys

#: Fields of a record (at any depth) that describe the run, not its result: which run, how long,
#: when, where from; a rerun that computes the same result changes them. ``provenance`` holds the
#: run id, git state, host, packages, times and the config slice (a downstream job's own key holds
#: its own config). A resume continues bit for bit, so where it resumed from is the run's too.
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
    """A record (any JSON value) without its :data:`RUN_FIELDS`, at any depth: what two runs that
    computed the same result have in common."""
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
    """What keeps a JSON object from being a job's record, in words (None: nothing): a provenance
    block with :data:`RECORD_PROVENANCE`, and a result beside it (a field
    :func:`result_content` keeps); a sidecar (the block at the top level: its result is the
    file it describes) the whole block a job writes (``provenance.BLOCK_FIELDS``)."""
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

    ``where``: the config path of the slice, or, for a slice gathered from several places (a
    variant's params: defaults and overrides), a map of the slice's dotted keys to the config
    path that sets each now (the longest key that prefixes a change names it; ``""`` the rest).
    ``inherited``: the keys the job's own place does not set now (a variant's key taken from the
    defaults), each mapped to its path on that place: a change of one is named there, ``(now set
    by <where>)`` after it. A recorded slice cannot tell an edit of the defaults from the
    variant's own key removed; naming the defaults alone was wrong in the second case.
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
    """Wall seconds of one run of the job: the mean ``s`` over the rows of its benchmark file (TSV,
    or JSON lines for ``.jsonl``; one row per run Snakemake measured); None when absent, empty or
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
