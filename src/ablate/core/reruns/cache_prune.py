"""``ablate cache [--max-size SIZE]``: the run cache's size, and its pruning to a bound: the entries
used longest ago go first (a restore touches an entry's manifest), and the refused entries kept for
inspection (``refused/``) before any. An entry goes in one rename (a concurrent restore then misses
it and the job runs), then is deleted."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import uuid
from pathlib import Path

from ablate.core.reruns.runcache import MANIFEST, REFUSED

_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_size(text: str) -> int:
    """``20G``, ``500M``, ``1.5T`` or a number of bytes (decimal units)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)B?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"--max-size {text}: write a size such as 500M, 20G or 1.5T")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def _delete(path: Path) -> None:
    aside = path.with_name(f".pruned-{uuid.uuid4().hex[:8]}")
    path.rename(aside)
    shutil.rmtree(aside)


def _prune(cache: Path, bound: int | None) -> list[str]:
    """Prune ``cache`` to ``bound`` bytes (None: only say its size); the lines it says."""
    entries = [p for p in cache.iterdir() if (p / MANIFEST).is_file()]
    entries.sort(key=lambda p: (p / MANIFEST).stat().st_mtime)  # last stored or restored first
    sizes = {p: _size_of(p) for p in entries}
    refused = cache / REFUSED
    refused_size = _size_of(refused) if refused.is_dir() else 0
    total = sum(sizes.values()) + refused_size
    lines = [f"{cache}: {len(entries)} entries, {_gb(total)}"]
    if bound is None or total <= bound:
        return lines
    if refused_size:
        _delete(refused)
        total -= refused_size
        lines.append(f"removed {refused}/ (refused entries, {_gb(refused_size)})")
    gone = []
    for p in entries:
        if total <= bound:
            break
        _delete(p)
        total -= sizes[p]
        gone.append(p)
    if gone:
        freed = sum(sizes[p] for p in gone)
        lines.append(f"removed the {len(gone)} entries used longest ago ({_gb(freed)})")
    lines.append(f"{cache}: {len(entries) - len(gone)} entries, {_gb(total)} (bound {_gb(bound)})")
    return lines


def main(argv: list[str] | None = None) -> int:
    from ablate.core.config import subschema

    ap = argparse.ArgumentParser(
        prog="ablate cache",
        description="The run cache's size; with --max-size, pruned to it: the entries used "
        "longest ago and the refused ones go first. A pruned job runs again when asked for.",
    )
    default = subschema("properties/run_cache")["default"]
    ap.add_argument("--cache", default=default, help=f"the run cache's folder (default {default})")
    ap.add_argument("--max-size", metavar="SIZE", help="prune to this size (500M, 20G, 1.5T)")
    args = ap.parse_args(argv)
    try:
        bound = parse_size(args.max_size) if args.max_size is not None else None
        if not Path(args.cache).is_dir():
            raise ValueError(f"--cache {args.cache}: no such folder (the config's run_cache)")
        print("\n".join(_prune(Path(args.cache), bound)))
    except (ValueError, OSError) as exc:
        print(f"ablate cache: {exc}", file=sys.stderr)
        return 2
    return 0
