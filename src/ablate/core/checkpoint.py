"""Checkpoint integrity: a hash manifest written last, verified before any stage trusts the files.

A checkpoint directory is complete only if ``MANIFEST_NAME`` exists and every file it lists has
the recorded size and sha256. Writers create the manifest as their final act (after an atomic
rename of the directory), so a half-written or altered checkpoint is always detected.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST_NAME = "checkpoint_manifest.json"


class CheckpointError(RuntimeError):
    pass


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> dict:
    """Hash every file under ``directory`` (except the manifest) and write the manifest."""
    d = Path(directory)
    files = {}
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            files[str(p.relative_to(d))] = {
                "bytes": p.stat().st_size,
                "sha256": sha256_file(p),
            }
    manifest = {"files": files, **(extra or {})}
    tmp = d / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, d / MANIFEST_NAME)
    return manifest


def verify(directory: str | os.PathLike) -> dict:
    """Raise :class:`CheckpointError` naming the first missing, truncated or altered file."""
    d = Path(directory)
    mpath = d / MANIFEST_NAME
    if not mpath.exists():
        raise CheckpointError(f"{d} has no {MANIFEST_NAME}: the checkpoint was never completed")
    manifest = json.loads(mpath.read_text())
    for rel, meta in manifest["files"].items():
        p = d / rel
        if not p.exists():
            raise CheckpointError(f"checkpoint {d}: file {rel} is missing")
        size = p.stat().st_size
        if size != meta["bytes"]:
            raise CheckpointError(
                f"checkpoint {d}: file {rel} has {size} bytes, manifest says {meta['bytes']} (truncated?)"
            )
        if sha256_file(p) != meta["sha256"]:
            raise CheckpointError(
                f"checkpoint {d}: file {rel} does not match its recorded sha256 (altered)"
            )
    return manifest


def verify_if_manifest(directory: str | os.PathLike) -> dict | None:
    """Verify checkpoints that carry a manifest; foreign model dirs (no manifest) pass through."""
    if (Path(directory) / MANIFEST_NAME).exists():
        return verify(directory)
    return None
