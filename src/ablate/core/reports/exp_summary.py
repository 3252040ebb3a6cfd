"""What a run of experiments alone (``ablate exp run``, :mod:`ablate.core.trees.exp_run`) ends
with: each experiment's own summary, its tree, what ran there, its keys, its claims and its deltas
against the base as its row of ``ablate runs`` (:mod:`ablate.core.reports.runs`) has them. The
base's ``onsuccess`` (rules/common.smk) prints it. No torch."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ablate import studies
from ablate.core.outputs.records import read_json
from ablate.core.reports import runs
from ablate.core.trees.experiments import DEFINITION, folder, jobs_line


def closing_lines(results: str, names: Iterable[str], root: str | os.PathLike = ".") -> list[str]:
    """Each experiment's closing lines; ``results``: the base's tree, ``root`` the working
    directory."""
    rows = runs.table_rows(root, results)
    out = []
    for name in names:
        tree = folder(results, name)
        out.append(f"Finished experiment {name}: its tree is {tree}/ (the base's: {results}/)")
        row = next((r for r in rows if tree in [c.split(" (")[0] for c in r["tree"]]), None)
        definition = read_json(Path(root, tree, DEFINITION))
        if row is None or definition is None:  # the run's start writes its definition
            out.append("  nothing of it is in its tree yet")
            continue
        if row["tree"][0] != tree:  # its runs are another tree's (restored from the run cache)
            out.append(f"  its runs are those of {row['tree'][0]}: its row in ablate runs")
        out.append(f"  {jobs_line(definition, Path(root, tree))}")
        changes = [*definition.get("changes", []), *definition.get("slices", [])]
        out += [f"  changes {c}" for c in changes]
        for study in studies.STUDIES:
            mod = studies.side(study, "status")
            if not hasattr(mod, "claims"):
                continue
            if own := runs.claim_lines(study, mod.claims(Path(root, tree))):
                out += [f"  claims in its tree: {own[0]}", *(f"  {c}" for c in own[1:])]
            elif mod.claims(Path(root, results)):
                out.append(f"  claims: {study}: the base's (its change does not reach them)")
        out += [f"  claims vs base: {c}" for c in row["claims vs base"]]
        deltas = row["headline vs base"] or ["no headline score differs from the base's"]
        out += [f"  vs base: {d}" for d in deltas]
    if out:
        out.append("Every score and task of every tree, side by side: ablate runs")
    return out
