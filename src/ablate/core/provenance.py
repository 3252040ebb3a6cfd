"""The provenance block every stage output carries: code, config, data, packages, hardware, time.

Never records environment variables or command lines, so secrets (API keys, tokens) cannot leak
into outputs through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
import uuid
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "ablate",
    "torch",
    "transformers",
    "lm_eval",
    "datasets",
    "accelerate",
    "snakemake",
    "mistral_common",
    "pandas",
    "pyarrow",
    "numpy",
)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config_slice: Any) -> str:
    """Stable hash of a config sub-tree (key order does not matter)."""
    return hashlib.sha256(canonical_json(config_slice).encode()).hexdigest()[:16]


def fingerprint_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of the sorted (relative name, sha256) list of a directory's files."""
    from ablate.core.checkpoint import sha256_file

    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(str(f.relative_to(p)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def git_state(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "dirty": bool(status) if status is not None else None,
    }


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            try:
                out[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                out[name] = None
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return info


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def collect(
    *,
    config_slice: Any,
    inputs: dict[str, str | os.PathLike] | None = None,
    started: float | None = None,
    run_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the provenance block. ``inputs`` maps a label to a file or directory to fingerprint."""
    block = {
        "run_id": run_id or new_run_id(),
        "git": git_state(Path(__file__).resolve().parent),
        "config_hash": config_hash(config_slice),
        "config": config_slice,
        "inputs": {k: fingerprint_path(v) for k, v in sorted((inputs or {}).items())},
        "packages": package_versions(),
        "hardware": hardware(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if started is not None:
        block["wall_time_s"] = round(time.time() - started, 3)
    if extra:
        block.update(extra)
    return block
