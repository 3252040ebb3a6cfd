"""``ablate diff RUN_A RUN_B``: what differs between two runs of a job, the question a provenance
record exists to answer ("why did 3B move between these two runs?").

A run is a ``run_id`` (a replaced one found in its ``history/`` copy) or a record's path. A changed
upstream run is named by the config key it changed, not just another model hash. Numbers show 6
significant digits, as the tables write them: a change below that is float noise.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path
from typing import Any

from ablate.core.outputs.io import HISTORY_DIR
from ablate.core.outputs.provenance import changed_keys
from ablate.core.outputs.records import (
    RECORD_PROVENANCE,
    RUN_FIELDS,
    provenance_of,
    read_json,
    record_lacks,
    result_content,
)
from ablate.core.reruns import runcache

# folders that hold no record (weights, training state, event files, Snakemake's state)
_SKIP_DIRS = {"final", "checkpoints", "tensorboard", "tokenizer", ".snakemake", ".git", "mlruns"}


class _DiffError(ValueError):
    pass


def find_record(run: str, roots: list[str]) -> Path:
    """The record file of a run id (or the path itself), among the records alone."""
    if Path(run).is_file():
        return Path(run)
    hits = []
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
            if runcache.MANIFEST in files and runcache.OUTPUTS in dirs:
                dirs[:] = []  # a run cache entry (the default's is in the working directory)
                continue  # holds copies of records: the live record is the run's
            for p in (Path(dirpath) / f for f in files if f.endswith(".json")):
                record = read_json(p)
                if record_lacks(record):  # no record: what it holds names no run of a job
                    continue
                if run in (provenance_of(record).get("run_id"), record.get("run_id")):
                    hits.append(p)
    if not hits:
        raise _DiffError(f"no record with run_id {run!r} under {', '.join(roots)}")
    # a run id found twice (the record and its copy in io.HISTORY_DIR, a copied results
    # folder): the same record; a live one is named first
    return sorted(hits, key=lambda p: (p.parent.name == HISTORY_DIR, p))[0]


#: significant digits of a number as the diff shows it (the tables' ``%.6g``)
_DIGITS = 6
#: run ids are in the header; the provenance block has its own sections
_NOT_SHOWN = {"provenance", "run_id"}


def _shown(tree: Any) -> Any:
    """Lists left out, numbers to :data:`_DIGITS` significant digits."""
    if isinstance(tree, dict):
        return {k: _shown(v) for k, v in tree.items() if not isinstance(v, list)}
    if isinstance(tree, float):
        return float(f"{tree:.{_DIGITS}g}")
    return tree


def _common_tail(a: str, b: str) -> int:
    """How many trailing path components two paths share."""
    pairs = zip(reversed(Path(a).parts), reversed(Path(b).parts))
    return len(list(itertools.takewhile(lambda p: p[0] == p[1], pairs)))


def _pairs(a: dict[str, str], b: dict[str, str]) -> list[tuple[str | None, str | None]]:
    """The upstream records of A and B paired by their longest common path tail."""
    out, left = [], dict(b)
    for pa in sorted(a):
        best = max(left, key=lambda pb: _common_tail(pa, pb), default=None)
        if best is not None and _common_tail(pa, best) >= 2:
            left.pop(best)
            out.append((pa, best))
        else:
            out.append((pa, None))
    return out + [(None, pb) for pb in sorted(left)]


def upstream(pa: dict, pb: dict, roots: list[str], depth: int = 3) -> list[str]:
    """Why two records' upstream differs: for each record both read whose run differs, the
    config keys its run changed (``finetune/3A/summary.json: params.max_steps 200 -> 40``), or,
    where its config is the same, its own upstream's, ``depth`` records up."""
    ua, ub = pa.get("upstream") or {}, pb.get("upstream") or {}
    lines = []
    for x, y in _pairs(ua, ub):
        if x is None or y is None:
            lines.append(f"{x or y}: read by {'A' if y is None else 'B'} only")
            continue
        if ua[x] == ub[y]:
            continue
        name = x if x == y else f"{x} / {y}"
        try:
            rx, ry = (read_json(find_record(r, roots)) or {} for r in (ua[x], ub[y]))
        except _DiffError:
            lines.append(f"{name}: run {ua[x]} -> {ub[y]} (a record not found under {roots})")
            continue
        px, py = provenance_of(rx), provenance_of(ry)
        keys = changed_keys(px.get("config"), py.get("config"))
        deeper = upstream(px, py, roots, depth - 1) if depth > 1 and not keys else []
        lines.append(
            f"{name}: run {ua[x]} -> {ub[y]}" + ("" if keys or deeper else ", same config")
        )
        lines += [f"  {k}" for k in keys] + [f"  {d}" for d in deeper]
    return lines


def diff(a: Path, b: Path, roots: list[str] | None = None) -> list[str]:
    ra, rb = read_json(a), read_json(b)
    if ra is None or rb is None:
        raise _DiffError(f"{a if ra is None else b} is not a JSON record")
    pa, pb = provenance_of(ra), provenance_of(rb)
    for path, record in ((a, ra), (b, rb)):
        if lacks := record_lacks(record):  # a JSON object of another kind: no run to compare
            raise _DiffError(
                f"{path} is no job's record ({lacks}): give a run id or a record a job wrote (its "
                "summary.json, metrics.json: its results and a provenance block with its "
                f"{' and '.join(RECORD_PROVENANCE)})"
            )
    run = RUN_FIELDS - _NOT_SHOWN
    sections = [
        ("config", changed_keys(pa.get("config"), pb.get("config"))),
        # the records it read whose run changed, and the config key that changed it
        ("upstream", upstream(pa, pb, roots or ["."])),
        ("inputs", changed_keys(pa.get("inputs"), pb.get("inputs"))),
        ("code", changed_keys(pa.get("git"), pb.get("git"), "git")),
        ("packages", changed_keys(pa.get("packages"), pb.get("packages"))),
        ("hardware", changed_keys(pa.get("hardware"), pb.get("hardware"))),
        # the record's own numbers and labels: no run fields, no curves or per-item lists
        ("results", changed_keys(*(_shown(result_content(r)) for r in (ra, rb)))),
        # its fields that describe its run (timings, throughput), at the top level
        (
            "run (timings)",
            changed_keys(*(_shown({k: v for k, v in r.items() if k in run}) for r in (ra, rb))),
        ),
    ]
    lines = [
        f"A: {a} (run {pa.get('run_id')}, config {pa.get('config_hash')}, {pa.get('finished_at')})",
        f"B: {b} (run {pb.get('run_id')}, config {pb.get('config_hash')}, {pb.get('finished_at')})",
    ]
    for title, changes in sections:
        n = sum(not c.startswith(" ") for c in changes)
        lines.append(f"{title}: " + ("same" if not changes else f"{n} changed"))
        lines += [f"  {c}" for c in changes]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ablate diff",
        description="Compare two runs (run_ids or record paths): config slice (the changed key), "
        "inputs, code, package versions, hardware and numerics environment, results.",
    )
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument(
        "--in",
        dest="roots",
        action="append",
        help="folder to search for the records of run ids (repeatable; default: .)",
    )
    args = ap.parse_args(argv)
    roots = args.roots or ["."]
    try:
        lines = diff(find_record(args.run_a, roots), find_record(args.run_b, roots), roots)
    except _DiffError as exc:
        print(f"ablate diff: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
