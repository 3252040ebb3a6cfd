"""Results trees: every one under a folder with its records, and what those records say.

A results tree is a folder holding job logs and records (JSON with a provenance block holding a
config slice); a record belongs to the innermost tree above it. Found by their records, not by
a list of folders: a config's ``results:`` may name any. No torch: it reads JSON.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate import studies
from ablate.core.config import normalized
from ablate.core.jobs import LOG
from ablate.core.outputs import io
from ablate.core.outputs.checkpoint_integrity import MANIFEST_NAME
from ablate.core.outputs.provenance import changed_keys
from ablate.core.outputs.records import provenance_of, read_json
from ablate.core.trees import experiments
from ablate.core.trees.results_origin import ORIGIN_NAME, resolved

#: the folder of a tree's job logs: a folder holding it (and records) is a results tree
LOGS = LOG.split("/")[0]
#: folders never searched (state, environments, version control, earlier runs' copies)
_SKIPPED = frozenset({".snakemake", ".git", ".venv", "node_modules", "__pycache__", io.HISTORY_DIR})


@dataclass
class Tree:
    """One results tree: its records (path relative to the tree -> provenance block)."""

    path: Path
    records: dict[str, dict] = field(default_factory=dict)


@functools.cache
def _part_folders() -> frozenset[str]:
    """The folders of a tree holding parts of its configuration (``PART_FOLDERS``)."""
    return frozenset(
        f for s in studies.STUDIES for f in getattr(studies.side(s, "layout"), "PART_FOLDERS", ())
    )


@functools.cache
def own_folders() -> frozenset[str]:
    """The names a results tree's own files take at its top."""
    tops = {
        p.split("/")[0]
        for s in studies.STUDIES
        for p in studies.side(s, "layout").PATTERNS.values()
    }
    return frozenset(tops | _part_folders() | {experiments.EXP_DIR})


def find_trees(root: str | os.PathLike) -> list[Tree]:
    """Every results tree under ``root`` with its records, in path order."""
    root = Path(root)
    found: dict[Path, Tree] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED)
        if MANIFEST_NAME in filenames:  # a checkpoint: weights and tokenizer files
            dirnames[:] = []
            continue
        here = Path(dirpath)
        part = here.parent.name in _part_folders() and here.parent.parent in found
        if (here / LOGS).is_dir() and not part:
            found.setdefault(here, Tree(here))
        # a record is kept in the history folder beside it as <run_id>.<name> (io.write_json):
        # only those files are read, not a tokenizer's 17 MB of JSON
        kept = os.listdir(here / io.HISTORY_DIR) if (here / io.HISTORY_DIR).is_dir() else []
        for name in sorted({k.split(".", 1)[-1] for k in kept} & set(filenames)):
            prov = provenance_of(read_json(here / name))
            if "config" not in prov:
                continue
            tree = next((found[p] for p in (here, *here.parents) if p in found), None)
            if tree is not None:
                tree.records[str((here / name).relative_to(tree.path))] = prov
    # an experiment's tree is one before it holds a record of its own (every job the base's)
    return [
        t
        for _, t in sorted(found.items())
        if t.records or (t.path / experiments.DEFINITION).is_file()
    ]


def differences(base: Tree, tree: Tree) -> list[str]:
    """The config keys ``tree``'s records differ in from ``base``'s, and the unpaired ones."""
    per_change: Counter[str] = Counter()
    for rel in sorted(set(base.records) & set(tree.records)):
        folder = str(Path(rel).parent)
        old, new = base.records[rel].get("config"), tree.records[rel].get("config")
        for change in changed_keys(old, new):
            per_change[f"{folder}: {change}"] += 1
    lines = [f"{c} ({n} records)" if n > 1 else c for c, n in per_change.items()]
    only_here = len(set(tree.records) - set(base.records))
    only_base = len(set(base.records) - set(tree.records))
    if only_here:
        lines.append(f"{only_here} records not in base")
    if only_base:
        lines.append(f"{only_base} records of base not here")
    return lines


def newest(tree: Tree) -> str:
    """The newest ``finished_at`` of the tree's records (ISO times sort as text)."""
    return max((str(p.get("finished_at") or "") for p in tree.records.values()), default="")


def where(tree: Tree) -> list[str]:
    """Each host the records ran on, with its GPUs (else its CPU and kernel set) and how many."""
    hosts: Counter[str] = Counter()
    for prov in tree.records.values():
        hw = prov.get("hardware") or {}
        gpus = [g.get("name", "?") if isinstance(g, dict) else str(g) for g in hw.get("gpus") or []]
        device = ", ".join(sorted(set(gpus))) or " ".join(
            str(x) for x in (hw.get("cpu_model"), hw.get("torch_cpu_capability")) if x
        )
        hosts[f"{hw.get('hostname') or '?'} ({device or 'unknown device'})"] += 1
    return [f"{h}: {n}" for h, n in hosts.most_common()]


def commits(tree: Tree) -> list[str]:
    """The code each record ran with: short commit (``+dirty`` for uncommitted edits), count."""
    seen: Counter[str] = Counter()
    for prov in tree.records.values():
        git = prov.get("git") or {}
        seen[str(git.get("commit") or "?")[:10] + ("+dirty" if git.get("dirty") else "")] += 1
    return [f"{c}: {n}" for c, n in seen.most_common()]


def experiment_of(tree: Tree) -> dict[str, Any] | None:
    return read_json(tree.path / experiments.DEFINITION)


@functools.cache
def _study_patterns() -> dict[str, re.Pattern]:
    """Each study's files (its layout's PATTERNS, a file in a folder, a sidecar) as a regex."""
    out = {}
    for study in studies.STUDIES:
        alts = [
            "".join(re.escape(t) if i % 2 == 0 else "[^/]+" for i, t in enumerate(parts))
            for parts in (
                re.split(r"\{([^}]+)\}", p) for p in studies.side(study, "layout").PATTERNS.values()
            )
        ]
        out[study] = re.compile("(?:" + "|".join(alts) + r")(?:[/.].*)?")
    return out


def not_written_by(
    tree: Tree, outputs: Iterable[str | os.PathLike], run: Iterable[str] | None = None
) -> list[str]:
    """The records of ``tree`` that are none of ``outputs`` and lie in none: another
    configuration's. ``run``: the configuration's studies; another study's records are left out
    (a run of one study reads and replaces none of the other's files)."""
    outs = {os.path.normpath(o) for o in outputs}
    others = [p for s, p in _study_patterns().items() if run is not None and s not in run]

    def written(path: Path) -> bool:
        path = Path(os.path.normpath(path))
        return any(str(p) in outs for p in (path, *path.parents))

    return [
        rel
        for rel in tree.records
        if not written(tree.path / rel) and not any(p.fullmatch(rel) for p in others)
    ]


def mixed_warning(
    results: str, outputs: Iterable[str | os.PathLike], run: Iterable[str]
) -> str | None:
    """One line when ``results`` holds records of ``run`` no job here writes, else None."""
    tree = next((t for t in find_trees(results) if t.path == Path(results)), None)
    foreign = sorted(not_written_by(tree, outputs, list(run))) if tree else []
    if not foreign:
        return None
    shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
    return (
        f"warning: {results}/ holds {len(foreign)} records no job of this configuration writes "
        f"({shown}): another configuration wrote into this results folder, and this run's "
        f"tables replace the ones made from them; give each configuration its own `results:` "
        f"(`ablate runs --configfile <its files>` lists them)"
    )


def _experiment_tree(path: Path) -> str | None:
    """The base folder of ``path`` when it is an experiment's tree, else None."""
    base = experiments.base_of(path)
    if base and ((path / experiments.DEFINITION).is_file() or (Path(base) / ORIGIN_NAME).is_file()):
        return base
    return None


def _own_tree(path: Path, experiment: Any) -> bool:
    """Whether ``path`` is the tree of the experiment whose marker is ``experiment``."""
    if not isinstance(experiment, Mapping) or not isinstance(experiment.get("base"), Mapping):
        return False
    base, name = experiment["base"].get("results"), experiment.get("name")
    return isinstance(base, str) and str(path) == resolved(experiments.folder(base, str(name)))


def nesting_error(results: str, experiment: Any = None) -> str | None:
    """One line when the folder ``results`` (symlinks resolved) lies where another results tree's
    files lie: an experiment's tree, or a base tree's :func:`own_folders`; None otherwise.
    ``experiment``: the configuration's marker: its own tree is its to write, unless another
    configuration made that folder."""
    path = Path(resolved(results))
    if _own_tree(path, experiment):
        if (path / ORIGIN_NAME).is_file():
            return (
                f"invalid config at experiments.{experiment.get('name')}: its results tree "
                f"{path}/ is another configuration's results folder ({path / ORIGIN_NAME}), which "
                "the experiment would rewrite; give the experiment another name, or move that "
                "folder"
            )
        return None
    if str(path) != normalized(results):  # a link: say where it leads
        results = f"{results} (a link to {path})"
    inside = [p for p in (path, *path.parents) if str(p) != "."]
    for tree in inside:
        if base := _experiment_tree(tree):
            where = "is" if tree == path else f"lies in {tree}/,"
            return (
                f"invalid config at results: {results} {where} the results tree of experiment "
                f"{tree.name} of {base}/ (`ablate exp run` writes it): a run of another "
                "configuration there rewrites its records; give this configuration a results "
                f"folder of its own, outside {base}/{experiments.EXP_DIR}/"
            )
    for tree in (p for p in path.parents if str(p) != "."):
        top = path.relative_to(tree).parts[0]
        if (tree / ORIGIN_NAME).is_file() and top in own_folders():
            return (
                f"invalid config at results: {results} lies in {tree}/{top}/ of the results tree "
                f"{tree}/ ({tree / ORIGIN_NAME}), where that tree's own jobs write: a run there "
                "rewrites its records; give this configuration a results folder of its own "
                f"(outside {tree}/, or {tree}/<a new name>)"
            )
    return None
