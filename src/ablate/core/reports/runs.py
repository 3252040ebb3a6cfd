"""``ablate runs``: every results tree under a folder side by side, one row each (as DVC's
``exp show`` or MLflow's run comparison; trees of the same runs one row): the config keys its
records differ in from a base tree's, each study's headline numbers and their deltas against the
base with their paired CIs, the claim verdicts, when and where it last ran, and, for a
configuration given with ``--configfile``, its jobs' status (done, stale, to run) with the jobs
whose records another configuration made. No torch.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate import studies
from ablate.core.config import subschema
from ablate.core.outputs import io
from ablate.core.outputs.provenance import changed_keys
from ablate.core.outputs.records import provenance_of, read_json
from ablate.core.reports import status
from ablate.core.reports.deltas import DELTAS, read_part, scores, vs_base
from ablate.core.reports.status_report import STYLE, html_table
from ablate.core.reruns import runcache
from ablate.core.trees.experiments import base_changed, jobs_line
from ablate.core.trees.results_trees import (
    LOGS,
    Tree,
    commits,
    differences,
    experiment_of,
    find_trees,
    newest,
    not_written_by,
    where,
)

#: the columns of the table, the CSV and the HTML page
COLUMNS = (
    "tree",
    "records",
    "last run",
    "where",
    "commits",
    "differs from base",
    "numbers",
    "vs base",
    "claims",
    "claims vs base",
    "status",
)
#: the columns of the one-line-per-tree table printed first (and of --md)
_SUMMARY = ("tree", "differs from base", "vs base", "claims vs base", "last run")


def _study_numbers(results: Path, shared: Path | None = None) -> tuple[list[str], list[str]]:
    """Each study's headline numbers and :func:`claim_lines` in ``results``."""
    numbers, claims = [], []
    for study in studies.STUDIES:
        mod = studies.side(study, "status")
        numbers += [f"{study}: {n}" for n in read_part(mod, "run_numbers", results, shared)]
        claims += claim_lines(study, read_part(mod, "claims", results, shared))
    return numbers, claims


def claim_lines(study: str, rows: list[dict[str, str]]) -> list[str]:
    """A study's claims table as lines: each verdict's count, each study-level claim's."""
    if not rows:
        return []
    counts = Counter(r.get("verdict") or "?" for r in rows)
    head = f"{study}: " + ", ".join(f"{n} {v}" for v, n in counts.most_common())
    return [head, *(f"  {r['claim']}: {r.get('verdict')}" for r in rows if "/" not in r["claim"])]


@dataclass
class Configuration:
    """A configuration: its files, results tree, jobs' status rows and outputs."""

    files: list[str]
    tree: Path
    rows: list[Any]
    outputs: set[str]
    studies: list[str]

    @classmethod
    def of(cls, files: list[str], config: dict, rows: list[Any], workdir: Path) -> Configuration:
        """``config``'s, from its status ``rows`` (paths relative to ``workdir``)."""
        outputs = {os.path.normpath(workdir / o) for r in rows for o in r.job.outputs.values()}
        tree = (workdir / config["results"]).resolve()
        return cls(files, tree, rows, outputs, list(config["studies"]))

    @classmethod
    def load(cls, files: list[str], workdir: Path) -> Configuration:
        from ablate.core.planner.inputs import load_config

        config = load_config(files)
        return cls.of(files, config, status.build(config, workdir)[1], workdir)

    def lines(self, tree: Tree) -> tuple[list[str], list[str]]:
        """Its jobs' status in ``tree`` and the records of ``tree`` no job of it writes."""
        counts = Counter(r.status for r in self.rows)
        states = ", ".join(f"{counts[s]} {s}" for s in status.STATES if counts[s])
        lines = [" ".join(self.files) + ": " + states]
        lines += [f"  {r.job.name}: {r.why}" for r in self.rows if r.status == "stale"]
        return lines, not_written_by(tree, self.outputs, self.studies)


def _status_lines(tree: Tree, configurations: list[Configuration]) -> tuple[list[str], list[str]]:
    """The status column of ``tree`` and why it is mixed."""
    state, mixed = [], []
    mine = [c for c in configurations if c.tree == tree.path.resolve()]
    if len(mine) > 1:
        mixed.append("written by " + "; ".join(" ".join(c.files) for c in mine))
    for c in mine:
        lines, foreign = c.lines(tree)
        state += lines
        if foreign:
            mixed.append(
                f"{len(foreign)} records no job of {' '.join(c.files)} writes: "
                + ", ".join(sorted(foreign))
            )
    return state + [f"mixed: {m}" for m in mixed], mixed


#: how a row names a tree folded into another (:func:`same_runs`)
_SAME_RUNS = "the same runs"


def same_runs(trees: list[Tree], first: Tree) -> list[tuple[Tree, list[Tree]]]:
    """Each tree with the trees of the same records and runs, ``first`` heading its group."""
    groups: dict[Any, list[Tree]] = {}
    for tree in trees:
        runs = frozenset((rel, str(p.get("run_id"))) for rel, p in tree.records.items())
        groups.setdefault(runs or id(tree), []).append(tree)
    heads = []
    for members in groups.values():
        if first in members:
            members.remove(first)
            members.insert(0, first)
        heads.append((members[0], members[1:]))
    return sorted(heads, key=lambda group: trees.index(group[0]))


def table_rows(
    root: str | os.PathLike = ".",
    base: str | os.PathLike | None = None,
    configurations: list[Configuration] = (),
) -> list[dict[str, list[str]]]:
    """One row per results tree under ``root``: each column of :data:`COLUMNS` as lines.
    ``base``: the tree the others are compared with (default: the first found);
    ``configurations``: those whose jobs' status their trees show."""
    root = Path(root)
    trees = find_trees(root)
    if not trees:
        return []
    by_path = {t.path.resolve(): t for t in trees}
    base_tree = trees[0] if base is None else by_path.get((root / base).resolve())
    if base_tree is None:
        raise LookupError(
            f"--base {base}: no results tree there (one of: "
            + ", ".join(str(t.path.relative_to(root)) for t in trees)
            + ")"
        )
    out = []
    base_scores = scores(base_tree.path)
    for tree, twins in same_runs(trees, base_tree):
        exp = experiment_of(tree)
        # an experiment's tables its change did not reach are its base's
        shared = (root / exp["base"]) if exp else None
        numbers, claims = _study_numbers(tree.path, shared)
        here = scores(tree.path, shared)
        withheld = None  # why its deltas against the base would not compare like with like
        if tree is base_tree:
            differs = ["(base)"]
        elif exp and (root / exp["base"]).resolve() == base_tree.path.resolve():
            # an experiment of this base: the keys it changes, the jobs that are the base's
            differs = [*exp["changes"], *exp.get("slices", [])] or ["nothing"]
            differs.append(jobs_line(exp, tree.path))
            withheld = base_changed(exp, base_tree.path)
        else:
            differs = differences(base_tree, tree) or ["nothing"]
        state, mixed = _status_lines(tree, configurations)
        name = str(tree.path.relative_to(root)) or "."
        out.append(
            {
                "tree": [name + (" (mixed)" if mixed else "")]
                + [f"{t.path.relative_to(root)} ({_SAME_RUNS})" for t in twins],
                "records": [str(len(tree.records))],
                "last run": [newest(tree)],
                "where": where(tree),
                "commits": commits(tree),
                "differs from base": differs,
                "numbers": numbers,
                "claims": claims,
                "status": state,
                # not columns: what the summary table and --sort read
                "scores": here,
                **(
                    dict.fromkeys(DELTAS, [])
                    if tree is base_tree
                    else vs_base(base_tree.path, tree.path, shared, base_scores, withheld)
                ),
            }
        )
    return out


def sort_rows(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """The rows sorted by a score (highest first, absent last) or a column's first line."""
    known = {k for r in rows for k in r["scores"]}
    if by in known:
        return sorted(rows, key=lambda r: (by not in r["scores"], -r["scores"].get(by, 0.0)))
    if by in COLUMNS:
        return sorted(rows, key=lambda r: (r[by] or [""])[0])
    close = difflib.get_close_matches(by, [*COLUMNS, *sorted(known)], n=1, cutoff=0.5)
    raise LookupError(
        f"--sort {by}: no column or score of that name"
        + (f"; did you mean {close[0]!r}?" if close else f" (columns: {', '.join(COLUMNS)})")
    )


def summary_table(rows: list[dict[str, Any]], sep: str = "; ") -> str:
    """One line per tree (a cell's lines joined by ``sep``) as a markdown table."""

    def cell(row: dict[str, Any], col: str) -> str:
        lines = row["headline vs base"] if col == "vs base" else row[col]
        return sep.join(c.strip() for c in lines).replace("|", "\\|")

    head = ["| " + " | ".join(_SUMMARY) + " |", "|" + "---|" * len(_SUMMARY)]
    return "\n".join(head + ["| " + " | ".join(cell(r, c) for c in _SUMMARY) + " |" for r in rows])


def _render_markdown(rows: list[dict[str, Any]]) -> str:
    """``--md``: the summary table, then every column of every tree."""

    def cell(lines: list[str]) -> str:
        return "<br>".join(c.strip() for c in lines).replace("|", "\\|")

    full = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    full += ["| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    return summary_table(rows, "<br>") + "\n\n" + "\n".join(full) + "\n"


_HISTORY_COLUMNS = ("tree", "record", "run", "finished", "differs from now", "numbers")


def history_rows(root: str | os.PathLike = ".") -> list[dict[str, str]]:
    """Every earlier run kept in history/ whose config or upstream differs from now."""
    from ablate.core.trees.diff import upstream

    root = Path(root)
    out = []
    for tree in find_trees(root):
        for rel, live in sorted(tree.records.items()):
            path = tree.path / rel
            kept = path.parent / io.HISTORY_DIR
            for old_path in sorted(kept.glob(f"*.{path.name}")):
                old = read_json(old_path) or {}
                prov = provenance_of(old)
                if prov.get("run_id") == live.get("run_id"):
                    continue
                differs = changed_keys(prov.get("config"), live.get("config"))
                for line in upstream(prov, live, [str(root)]):  # a record, then its keys
                    if line.startswith(" ") and differs:
                        differs[-1] += (", " if differs[-1].endswith(")") else " (") + line.strip()
                    else:
                        differs.append(f"upstream {line}")
                differs = [d + ")" if d.startswith("upstream") and "(" in d else d for d in differs]
                if not differs:
                    continue
                a, b = ((r.get("macro") or {}).get("score") for r in (old, read_json(path) or {}))
                both = isinstance(a, (int, float)) and isinstance(b, (int, float))
                out.append(
                    {
                        "tree": str(tree.path.relative_to(root)) or ".",
                        "record": rel,
                        "run": str(prov.get("run_id")),
                        "finished": str(prov.get("finished_at") or ""),
                        "differs from now": "; ".join(differs),
                        "numbers": f"macro {a:.3f} (now {b:.3f})" if both else "",
                    }
                )
    return out


_CACHE_COLUMNS = ("tree", "job", "entries", "last stored", "hosts", "params differ")


def cache_entries(cache: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """(each readable manifest of the run cache ``cache``, the unreadable entries' names)."""
    manifests, unreadable = [], []
    for entry in sorted(Path(cache).iterdir()):
        if entry.name == runcache.REFUSED or entry.name.startswith("."):
            continue
        manifest = read_json(entry / runcache.MANIFEST) if entry.is_dir() else None
        outputs = (manifest or {}).get("outputs")
        named = isinstance(outputs, list) and outputs and all(isinstance(o, str) for o in outputs)
        if named and isinstance((manifest or {}).get("parts"), dict):
            manifests.append(manifest)
        else:
            unreadable.append(entry.name)
    return manifests, unreadable


def _unreadable_line(cache: str | os.PathLike, names: list[str]) -> str:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"ablate runs: {len(names)} entr{'y' if len(names) == 1 else 'ies'} of the run cache "
        f"{cache} left out, with no readable {runcache.MANIFEST} naming its job: {shown} (a job "
        "whose key one is runs again and stores it anew; delete them to clear this line)"
    )


def cache_rows(cache: str | os.PathLike, root: str | os.PathLike = ".") -> list[dict[str, str]]:
    """One row per job (rule and wildcards) and results tree of the run cache ``cache``: how
    many entries, the newest one's time and host, and the params in which its entries differ
    from the oldest one. A tree gone from ``root`` is named by its outputs' folder."""
    root = Path(root)
    trees = [str(t.path.relative_to(root)) for t in find_trees(root)]
    jobs: dict[tuple[str, str], list[dict]] = {}
    for manifest in cache_entries(cache)[0]:
        parts = manifest["parts"]
        first = os.path.normpath(manifest["outputs"][0])
        inside = [t for t in trees if t == "." or first.startswith(t + os.sep)]
        tree = max(inside, key=len) if inside else os.path.dirname(first)
        wildcards = ",".join(f"{k}={v}" for k, v in (parts.get("wildcards") or {}).items())
        job = f"{parts.get('rule')}" + (f" {wildcards}" if wildcards else "")
        jobs.setdefault((tree, job), []).append(manifest)
    out = []
    for (tree, job), entries in sorted(jobs.items()):
        entries.sort(key=lambda m: str(m.get("stored_at") or ""))
        first, last = entries[0], entries[-1]
        differ = {
            c
            for m in entries[1:]
            for c in changed_keys(first["parts"].get("params"), m["parts"].get("params"))
        }
        out.append(
            {
                "tree": tree,
                "job": job,
                "entries": str(len(entries)),
                "last stored": f"{last.get('stored_at') or '?'} (run {last.get('run_id') or '?'})",
                "hosts": ", ".join(sorted({str(m.get("host") or "?") for m in entries})),
                "params differ": "; ".join(sorted(differ))
                or ("" if len(entries) == 1 else "none (inputs, code or packages differ)"),
            }
        )
    return out


def _render_text(
    rows: list[dict[str, list[str]]],
    cache: list[dict[str, str]] = (),
    history: list[dict[str, str]] = (),
) -> str:
    """The terminal form: the summary, one block per tree, the run cache, earlier runs."""
    blocks = [summary_table(rows)] if len(rows) > 1 else []
    for row in rows:
        lines = ["== " + "; ".join(row["tree"])]  # a tree and those of the same runs
        for col in COLUMNS[1:]:
            cells = row[col]
            if len(cells) == 1:
                lines.append(f"  {col}: {cells[0]}")
            elif cells:
                lines += [f"  {col}:", *(f"    {c}" for c in cells)]
        blocks.append("\n".join(lines))
    if cache:
        lines = ["== run cache"]
        lines += [
            f"  {c['tree']}: {c['job']}: {c['entries']} entries, last {c['last stored']} "
            f"on {c['hosts']}"
            + (f"; params differ: {c['params differ']}" if c["params differ"] else "")
            for c in cache
        ]
        blocks.append("\n".join(lines))
    if history:
        lines = ["== earlier runs (history/)"]
        lines += [
            f"  {h['tree']}: {h['record']}: run {h['run']} ({h['finished']}): "
            f"{h['differs from now']}" + (f"; {h['numbers']}" if h["numbers"] else "")
            for h in history
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _render_html(
    rows: list[dict[str, list[str]]],
    cache: list[dict[str, str]] = (),
    history: list[dict[str, str]] = (),
) -> str:
    """A self-contained HTML page: the summary, the trees, the earlier runs, the run cache."""
    summary = [
        {c: "\n".join(r["headline vs base"] if c == "vs base" else r[c]) for c in _SUMMARY}
        for r in rows
    ]
    trees = [{c: "\n".join(r[c]) for c in COLUMNS} for r in rows]
    tables = "<h2>Experiments</h2>" + html_table(list(_SUMMARY), summary)
    tables += "<h2>Results trees</h2>" + html_table(list(COLUMNS), trees)
    if history:
        tables += "<h2>Earlier runs</h2>" + html_table(list(_HISTORY_COLUMNS), list(history))
    if cache:
        tables += "<h2>Run cache</h2>" + html_table(list(_CACHE_COLUMNS), list(cache))
    return (
        f"<html><head><meta charset='utf-8'>{STYLE}<style>td{{white-space:pre-line}}</style>"
        f"</head><body>{tables}</body></html>\n"
    )


def write_page(config: dict, rows: list[Any], out: str | os.PathLike, workdir: str = ".") -> Path:
    """The report's runs page (rules/status.smk): every results tree beside this run's."""
    this = Configuration.of(["this run's configuration"], config, rows, Path(workdir))
    trees = table_rows(workdir, config["results"], [this])
    return io.write_text(out, _render_html(trees, history=history_rows(workdir)))


def main(argv: list[str] | None = None) -> int:
    from ablate.core.planner.inputs import PlanError

    ap = argparse.ArgumentParser(
        prog="ablate runs",
        description="Every results tree under a folder side by side: the config keys its "
        "records differ in from a base tree's, the headline numbers and their deltas with "
        "paired 95% CIs, the claim verdicts, when and where it last ran; with --cache, the run "
        "cache's entries per job. Runs no job.",
    )
    ap.add_argument("--root", default=".", help="the folder searched for results trees")
    ap.add_argument(
        "--base",
        help="the tree the others are compared with, relative to --root (default: the first)",
    )
    ap.add_argument(
        "--configfile",
        "--configfiles",
        nargs="+",
        action="append",
        metavar="FILE",
        help="a configuration's files, as given to snakemake (repeat the flag for another "
        "configuration): its tree also shows its jobs' status, and the records no job of it "
        "writes mark the tree mixed",
    )
    ap.add_argument(
        "--cache",
        metavar="DIR",
        help="also list this run cache's entries per job (default: the config's default "
        "folder, where it exists)",
    )
    ap.add_argument(
        "--sort",
        metavar="COLUMN_OR_SCORE",
        help='order the trees by a score, highest first ("mask: 3A under prefill_bidir", as '
        "the vs base column names it), or by a column",
    )
    ap.add_argument("--csv", metavar="FILE", help="also write the trees' table as CSV")
    ap.add_argument("--md", metavar="FILE", help="also write the tables as markdown")
    ap.add_argument("--html", metavar="FILE", help="also write every table as an HTML page")
    args = ap.parse_args(argv)
    default = Path(args.root) / subschema("properties/run_cache")["default"]
    if args.cache is None and default.is_dir():  # the run cache of a config that leaves it be
        args.cache = str(default)
    if args.cache and not Path(args.cache).is_dir():
        print(
            f"ablate runs: --cache {args.cache}: no such folder (the run cache: the config's run_cache)",
            file=sys.stderr,
        )
        return 2
    try:
        configs = [Configuration.load(f, Path(args.root)) for f in args.configfile or []]
        rows = table_rows(args.root, args.base, configs)
        if args.sort:
            rows = sort_rows(rows, args.sort)
    except (LookupError, PlanError) as exc:
        print(f"ablate runs: {exc}", file=sys.stderr)
        return 2
    cache = cache_rows(args.cache, args.root) if args.cache else []
    if args.cache and (unreadable := cache_entries(args.cache)[1]):
        print(_unreadable_line(args.cache, unreadable), file=sys.stderr)
    history = history_rows(args.root)
    if not rows and not cache:
        print(
            f"ablate runs: no results tree under {args.root} (a folder with {LOGS}/ and job "
            "records); run the workflow first, or pass --root",
            file=sys.stderr,
        )
        return 1
    print(_render_text(rows, cache, history))
    if args.csv:  # one row per tree, a cell's lines joined by "; "
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            w.writerows(["; ".join(c.strip() for c in row[col]) for col in COLUMNS] for row in rows)
    if args.md:
        io.write_text(args.md, _render_markdown(rows))
    if args.html:
        io.write_text(args.html, _render_html(rows, cache, history))
    return 0
