"""``ablate exp rm NAME``: remove an experiment, its results tree and its overlay, under the results
folder's lock (:mod:`ablate.core.trees.results_lock`: not under a live run). NAME is an overlay's
(``experiments/<name>.yaml``, every experiment in it: a whole sweep) or one experiment's (its tree,
and its entry in its overlay). The run cache keeps its entries (``ablate cache --max-size`` prunes it)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ablate.core.outputs import io
from ablate.core.trees import results_lock
from ablate.core.trees.experiments import OVERLAYS, folder
from ablate.core.user_yaml import config_mapping


def _targets(name: str, results: str) -> tuple[list[str], dict[Path, dict[str, Any] | None]]:
    """The experiments NAME removes, and each overlay's new content (None: the file goes)."""
    found = {  # each overlay file of experiments/ -> its experiments (name -> keys)
        path: dict(config_mapping(str(path)).get("experiments") or {})
        for path in sorted(Path(OVERLAYS).glob("*.yaml"))
    }
    own = Path(OVERLAYS) / f"{name}.yaml"
    if own in found:
        return list(found[own]), {own: None}
    edits: dict[Path, dict[str, Any] | None] = {}
    for path, experiments in found.items():
        if name in experiments:
            rest = {k: v for k, v in experiments.items() if k != name}
            edits[path] = {"experiments": rest} if rest else None
    if edits or Path(folder(results, name)).is_dir():
        return [name], edits
    known = sorted({n for e in found.values() for n in e} | {p.stem for p in found})
    raise LookupError(
        f"no experiment {name!r} (no {own}, no {folder(results, name)}/); "
        f"experiments here: {', '.join(known) or 'none'}"
    )


def remove(name: str, results: str) -> list[str]:
    """Remove NAME's trees and overlay entries under the results lock; the lines it says."""
    import yaml

    names, edits = _targets(name, results)
    results_lock.acquire(results, deleting=True)
    try:
        lines = []
        for n in names:
            tree = Path(folder(results, n))
            if tree.is_dir():
                shutil.rmtree(tree)
                lines.append(f"removed {tree}/")
        for path, content in edits.items():
            if content is None:
                path.unlink()
                lines.append(f"removed {path}")
            else:
                io.write_text(path, yaml.safe_dump(content, sort_keys=False))
                lines.append(f"removed {name} from {path}")
        return lines
    finally:
        results_lock.release(results)
