"""A hub repository's branch or tag resolved to the commit it names, once per results folder.

A run id that hashed ``revision: main`` would name whatever the branch holds the day a job loads
it, so a branch or tag is resolved before any run id is made: the lock (an entry fixes the commit
until deleted), the Hugging Face cache's ref, the hub, else the name with a warning; what the
cache or the hub resolved is written to the lock, so later runs agree (docs/bridge.md).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

from ablate.core.config import ConfigError
from ablate.core.outputs import io

#: The lock file's name in a configuration's results folder.
LOCK = "hub_revisions.json"
SHA = re.compile(r"[0-9a-f]{40}")
#: Seconds the hub may take to answer at parse time (a dry run without network falls to 4).
_TIMEOUT_S = 10.0
_warned: set[str] = set()  # the keys warned about in this process (a parse resolves more than once)


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, read now (a job sets it before HF imports)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in constants.ENV_VARS_TRUE_VALUES


def lock_path(results: str | os.PathLike) -> Path:
    return Path(results) / LOCK


def _read_lock(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    try:
        lock = io.load_json(path)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
    for key, entry in lock.items():
        if not (isinstance(entry, dict) and SHA.fullmatch(str(entry.get("sha", "")).lower())):
            raise ConfigError(
                f"{path}: entry {key!r} has no 40-hex-digit 'sha'; fix or delete the entry"
            )
    return lock


def _from_cache(repo: str, rev: str, repo_type: str) -> str | None:
    """The commit the local Hugging Face cache's ref file names for ``rev`` (None: none). A
    dataset has one only when it was downloaded by that name (``hf download --repo-type
    dataset``): ``datasets.load_dataset`` fetches by commit and writes no ref."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    ref = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type=repo_type)
    ref = ref / "refs" / rev
    sha = ref.read_text().strip().lower() if ref.is_file() else ""
    return sha if SHA.fullmatch(sha) else None


def _from_hub(repo: str, rev: str, repo_type: str) -> str | None:
    """The commit the hub names for ``rev`` (None: offline, unreachable or not found)."""
    if offline():
        return None
    from huggingface_hub import HfApi

    info = HfApi().dataset_info if repo_type == "dataset" else HfApi().model_info
    try:
        return info(repo, revision=rev, timeout=_TIMEOUT_S).sha
    except Exception:  # no network, 401/404: the name stays, and the warning says so
        return None


def key_of(repo: str, rev: str, repo_type: str = "model") -> str:
    """The lock's key: ``<repo>@<rev>``, a dataset's prefixed ``datasets/`` (as on the hub)."""
    return f"{'datasets/' if repo_type == 'dataset' else ''}{repo}@{rev}"


def resolve(
    repo: str, revision: str | None, results: str | os.PathLike | None, repo_type: str = "model"
) -> str:
    """``revision`` (None: ``main``) of hub repo ``repo`` as a commit sha, or its name with a
    warning when nothing knows it. ``results``: the folder of the lock (None: no lock)."""
    rev = revision or "main"
    if SHA.fullmatch(rev.lower()):
        return rev.lower()
    key = key_of(repo, rev, repo_type)
    path = lock_path(results) if results is not None else None
    lock = _read_lock(path) if path else {}
    if key in lock:
        return lock[key]["sha"].lower()
    for how, find in (("cache", _from_cache), ("hub", _from_hub)):
        sha = find(repo, rev, repo_type)
        if sha:
            if path:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                lock[key] = {"sha": sha, "resolved_at": stamp, "how": how}
                io.write_json(path, lock)
            return sha
    if key not in _warned:
        _warned.add(key)
        where = path or f"<results>/{LOCK}"
        print(
            f"warning: hub revision {key} is not resolved to a commit (hub offline or "
            f"unreachable, not in the local Hugging Face cache, not in {where}): run ids name "
            f"the branch, not a commit; pin it with `revision: <sha>` or an entry "
            f'{{"{key}": {{"sha": "<sha>"}}}} in {where}',
            file=sys.stderr,
        )
    return rev
