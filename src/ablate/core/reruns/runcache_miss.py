"""Why a job found no entry in the run cache: the nearest entry of the same job (its rule and
wildcards) and what differs from it, in one line, as ``snakemake -n`` says why a job is stale."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: at most this many differences are named, the rest counted
_SHOWN = 3


def _differences(
    new: dict[str, Any],
    old: dict[str, Any],
    inputs: list[str],
    code: dict[str, str],
    old_code: dict[str, str] | None,
) -> list[str]:
    """What differs between a job's key parts (``new``, stored form) and an entry's (``old``)."""
    from ablate.core.outputs.provenance import changed_keys

    out = []
    if new.get("format") != old.get("format"):
        out.append(f"the cache's layout (entry {old.get('format')}, this code {new['format']})")
    out += [f"params {d}" for d in changed_keys(old.get("params"), new.get("params"))]
    before, now = old.get("inputs") or [], new.get("inputs") or []
    if len(before) != len(now):
        out.append(f"its inputs ({len(before)} -> {len(now)} declared)")
    else:
        out += [f"input {path}" for path, a, b in zip(inputs, before, now, strict=False) if a != b]
    if new.get("code") != old.get("code"):
        if old_code is None:  # an entry stored before manifests listed code files
            out.append("the code (a module of ablate or a job script)")
        else:
            names = sorted(
                n for n in code.keys() | old_code.keys() if code.get(n) != old_code.get(n)
            )
            out.append("code " + ", ".join(names[:_SHOWN]) + _more(names))
    out += [
        f"package {d}" for d in changed_keys(old.get("packages") or {}, new.get("packages") or {})
    ]
    return out


def _more(items: list) -> str:
    return f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""


def nearest_difference(
    manifests: Iterable[Path], parts: dict[str, Any], inputs: list[str], code: dict[str, str]
) -> str | None:
    """The line that says why ``parts`` missed: the entry of the same rule and wildcards with the
    fewest differences (the newest of those), and what they are; None when none is of this job."""
    from ablate.core.outputs.io import load_json
    from ablate.core.outputs.provenance import canonical_json

    new = json.loads(canonical_json(parts))  # as a manifest stores them
    best: tuple | None = None
    for path in manifests:
        try:
            manifest = load_json(path)
            old = manifest["parts"]
            if old.get("rule") != new["rule"] or old.get("wildcards") != new["wildcards"]:
                continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # an unreadable entry: a restore refuses it, this line skips it
        diffs = _differences(new, old, inputs, code, manifest.get("code_files"))
        rank = (len(diffs), -_stamp(manifest.get("stored_at")))
        if diffs and (best is None or rank < best[0]):
            best = (rank, manifest, diffs)
    if best is None:
        return None
    _, manifest, diffs = best
    return (
        f"missed: the nearest entry of this job ({str(manifest.get('key'))[:12]}, stored "
        f"{manifest.get('stored_at') or '?'}) differs in "
        + "; ".join(diffs[:_SHOWN])
        + _more(diffs)
    )


def _stamp(stored_at: Any) -> float:
    try:
        return time.mktime(time.strptime(str(stored_at), "%Y-%m-%dT%H:%M:%S%z"))
    except ValueError:
        return 0.0
