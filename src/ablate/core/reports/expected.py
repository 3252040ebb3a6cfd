"""``ablate expected``: what a finished embedded default should give on this kind of CPU, and
whether it did.

A run is bit-identical on one machine, not across CPUs (torch's kernels and the vendor's BLAS
round differently), so the expected results are kept per CPU kind, written by ``ablate expected
--write`` from a run of this tree, never by hand (docs/embedded.md, "Expected results"). A claim
the row lacks (written before the claim existed) is unmeasured, not a difference.
"""

from __future__ import annotations

import argparse
import csv
import io as text_io
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ablate import studies
from ablate.core.outputs import io, provenance
from ablate.core.outputs.records import provenance_of, read_json
from ablate.core.reports import deltas
from ablate.core.reports.claims import VERDICTS

#: the expected results of the embedded default, per CPU kind (relative to the checkout)
EXPECTED_FILE = Path("docs/expected_results.csv")


def marks(name: str) -> tuple[str, str]:
    """The lines a page's section ``name`` is rendered between."""
    return f"<!-- expected-{name}: begin -->", f"<!-- expected-{name}: end -->"


#: the section name (:func:`marks`) of the tables of :data:`TABLES`
TABLE = "results"
COLUMNS = ["cpu_kind", "cpu_model", "tree", "date", "quantity", "value"]
_VENDORS = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}


def cpu_kind(hardware: dict) -> str:
    """``AMD AVX2``, ``Intel AVX512``: the vendor and torch's kernels, which decide the rounding."""
    vendor = hardware.get("cpu_vendor") or "unknown vendor"
    return f"{_VENDORS.get(vendor, vendor)} {hardware.get('torch_cpu_capability') or 'unknown'}"


def run_hardware(results: Path) -> dict:
    """The one CPU kind's hardware of the records under ``results``, else ValueError."""
    if not results.is_dir():
        raise ValueError(f"{results}: no such folder: give --results the results folder of a run")
    seen: dict[str, dict] = {}
    for path in sorted(results.rglob("*.json")):
        if "history" in path.parts:
            continue
        hw = provenance_of(read_json(path)).get("hardware")
        if isinstance(hw, dict) and "torch_cpu_capability" in hw:
            seen.setdefault(cpu_kind(hw), hw)
    if not seen:
        raise ValueError(
            f"{results}: no job record with its hardware: run the embedded default (snakemake "
            "-c2) first, or give --results the results folder of a finished run"
        )
    if len(seen) != 1:
        found = ", ".join(seen)
        raise ValueError(f"{results}: the records name {len(seen)} CPU kinds ({found}), not one")
    return next(iter(seen.values()))


def score_text(score: float) -> str:
    """A score as :data:`EXPECTED_FILE` holds it: 6 significant digits."""
    return f"{score:.6g}"


def measured(results: Path) -> dict[str, str]:
    """Every study's scores (6 significant digits) and claim verdicts in ``results``."""
    out = {k: score_text(v) for k, v in deltas.scores(results).items()}
    for study in studies.STUDIES:
        mod = studies.side(study, "status")
        for row in mod.claims(results) if hasattr(mod, "claims") else []:
            out[f"{study}: {row['claim']}"] = row.get("verdict") or ""
    return out


def load(path: Path = EXPECTED_FILE) -> dict[str, dict[str, str]]:
    """CPU kind -> its row: ``quantity -> value``, and ``[cpu_model]``, ``[tree]``, ``[date]``."""
    out: dict[str, dict[str, str]] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row = out.setdefault(r["cpu_kind"], {})
            row.update({f"[{k}]": r[k] for k in ("cpu_model", "tree", "date")})
            row[r["quantity"]] = r["value"]
    return out


def values(row: dict[str, str]) -> dict[str, str]:
    """A row's quantities, its bracketed metadata left out."""
    return {k: v for k, v in row.items() if not k.startswith("[")}


def differences(expected: dict[str, str], got: dict[str, str]) -> list[str]:
    """``<quantity>: expected X, got Y`` for each quantity that differs or is on one side."""
    return [
        f"{q}: expected {expected.get(q, 'absent')}, got {got.get(q, 'absent')}"
        for q in sorted(set(expected) | set(got))
        if expected.get(q) != got.get(q)
    ]


#: why a claim of :func:`every_cpu` that flipped or is not supported fails the comparison
_FINDING = "it must hold on every CPU kind: the study's finding"


@dataclass(frozen=True)
class _Comparison:
    """A run's quantities against its CPU kind's row (:func:`compare`)."""

    kind: str
    kinds: tuple[str, ...]
    #: ``<quantity>: expected X, got Y`` (a claim the row lacks, or one in ``broken``, left out)
    differs: list[str]
    unmeasured: list[str]
    #: the :func:`every_cpu` claims that flipped against the row or are not supported
    broken: list[str]

    @property
    def ok(self) -> bool:
        return not (self.differs or self.broken)

    def lines(self, results: Path | str) -> list[str]:
        """What ``ablate expected`` prints, the broken claims of the finding last."""
        head = "ablate expected: "
        if self.kind not in self.kinds:
            out = [
                f"{head}CPU kind {self.kind} is unmeasured ({EXPECTED_FILE} has "
                f"{', '.join(self.kinds)}); the claims that hold on every CPU: "
                + ("all supported" if not self.broken else "not all supported (below)")
            ]
        elif self.differs:
            out = [f"{head}{results} differs from {self.kind}'s row:"]
            out += [f"  {d}" for d in self.differs]
        else:
            out = [f"{head}{results} matches {self.kind}'s row"]
        if self.unmeasured and self.kind in self.kinds:
            out.append(
                f"{head}not in {self.kind}'s row, so unmeasured there (rewrite the row from a "
                f"run of this tree: ablate expected --write): {', '.join(self.unmeasured)}"
            )
        return out + [f"{head}FAILED: {b} ({_FINDING})" for b in self.broken]


def compare(rows: dict[str, dict[str, str]], kind: str, got: dict[str, str]) -> _Comparison:
    """``got`` (:func:`measured`) against the row of ``kind`` in ``rows`` (:func:`load`)."""
    row = values(rows[kind]) if kind in rows else None
    lacks = sorted(q for q, v in got.items() if v in VERDICTS and row is not None and q not in row)
    broken: dict[str, str] = {}  # claim -> its line
    for claim in every_cpu():
        now, was = got.get(claim, "absent"), (row or {}).get(claim)
        if was is not None and was != now:
            broken[claim] = f"{claim} flipped: expected {was}, got {now}"
        elif now != "supported":
            where = (
                f"CPU kind {kind} is unmeasured"
                if row is None
                else (f"as in {kind}'s row" if was else f"not in {kind}'s row")
            )
            broken[claim] = f"{claim} is {now} ({where})"
    differs = []
    if row is not None:
        seen = {q: v for q, v in got.items() if q not in lacks}
        differs = [d for d in differences(row, seen) if d.split(": expected ")[0] not in broken]
    unmeasured = [f"{q} {got[q]}" for q in lacks]
    return _Comparison(kind, tuple(sorted(rows)), differs, unmeasured, list(broken.values()))


def _headline(quantity: str) -> bool:
    """A quantity the page's table shows: a study-level score or claim, not a task's or a peak."""
    name = quantity.split(": ", 1)[1]
    return ":" not in name and "/" not in name and not name.endswith(" peak")


def every_cpu() -> list[str]:
    """The claims that must hold on any CPU kind: each study's status part's ``EVERY_CPU``."""
    return [
        f"{study}: {claim}"
        for study in studies.STUDIES
        for claim in getattr(studies.side(study, "status"), "EVERY_CPU", ())
    ]


def _scores(quantity: str) -> bool:
    """A score ``<model> under <policy>`` of a study with ``SCORES_BY_POLICY``: the README's."""
    study = quantity.split(": ", 1)[0]
    part = studies.side(study, "status") if study in studies.STUDIES else None
    by_policy = getattr(part, "SCORES_BY_POLICY", False)
    return by_policy and _headline(quantity) and " under " in quantity


def _kind_label(rows: dict[str, dict[str, str]], kind: str) -> str:
    """A column's heading: the kind, its CPU model, the tree and the date of its run."""
    row = rows[kind]
    return f"{kind} ({row['[cpu_model]']}, tree {row['[tree]']}, {row['[date]']})"


def _headline_table(rows: dict[str, dict[str, str]]) -> str:
    """docs/embedded.md's table: a line per quantity, a column per CPU kind, the spread."""
    kinds = sorted(rows)
    spread = len(kinds) > 1
    head = [_kind_label(rows, k) for k in kinds] + ["spread"] * spread
    lines = [f"| quantity | {' | '.join(head)} |", "|---" * (len(head) + 1) + "|"]
    order = list(studies.STUDIES)
    quantities = {q for k in kinds for q in values(rows[k]) if _headline(q)}
    for q in sorted(quantities, key=lambda q: (order.index(q.split(":")[0]), q)):
        cells = [rows[k].get(q, "") for k in kinds]
        try:
            nums = [float(c) for c in cells]
        except ValueError:
            nums = None
        shown = [f"{n:.3f}" for n in nums] if nums else cells
        if spread:
            shown.append(f"{max(nums) - min(nums):.3f}" if nums else "")
        lines.append(f"| {q} | {' | '.join(shown)} |")
    return "\n".join(lines)


def _scores_table(rows: dict[str, dict[str, str]]) -> str:
    """The README's table: a line per model, a column per CPU kind and eval policy."""
    cells = {
        (q.split(": ", 1)[1].split(" under ")[0], k, q.split(" under ")[1]): v
        for k in sorted(rows)
        for q, v in values(rows[k]).items()
        if _scores(q)
    }
    models = sorted({m for m, _, _ in cells}, key=lambda m: (m != "base", m))
    cols = sorted({(k, p) for _, k, p in cells}, key=lambda c: (c[0], c[1] != "causal", c[1]))
    head = [f"{_kind_label(rows, k)}: {p}" for k, p in cols]
    lines = [f"| model | {' | '.join(head)} |", "|---" * (len(head) + 1) + "|"]
    for m in models:
        shown = [f"{float(cells[m, k, p]):.3f}" if (m, k, p) in cells else "" for k, p in cols]
        lines.append(f"| {m} | {' | '.join(shown)} |")
    return "\n".join(lines)


#: the tables rendered from every row, between the :func:`marks` of :data:`TABLE` on each page
TABLES = {Path("docs/embedded.md"): _headline_table, Path("README.md"): _scores_table}


def front_sections() -> list[tuple[str, Path, str, Callable[[dict[str, str], str], str]]]:
    """(study, page, section name, its function): each study's ``FRONT_SECTIONS``."""
    return [
        (study, Path(page), name, render)
        for study in studies.STUDIES
        for page, name, render in getattr(studies.side(study, "status"), "FRONT_SECTIONS", ())
    ]


def front(rows: dict[str, dict[str, str]], kind: str) -> dict[tuple[Path, str], str]:
    """(page, section) -> each of :func:`front_sections` rendered from the row of ``kind``."""
    row = values(rows[kind])
    return {
        (page, name): render(
            {q.split(": ", 1)[1]: v for q, v in row.items() if q.startswith(f"{study}: ")},
            _kind_label(rows, kind),
        )
        for study, page, name, render in front_sections()
    }


def pictures() -> dict[Path, Path]:
    """Each study's ``FRONT_PICTURE``: its path under a results folder -> in the checkout."""
    parts = [studies.side(study, "status") for study in studies.STUDIES]
    pairs = [getattr(part, "FRONT_PICTURE", None) for part in parts]
    return {Path(src): Path(dst) for src, dst in filter(None, pairs)}


def _written() -> list[str]:
    """The files ``--write`` writes: :data:`EXPECTED_FILE`, the pages, the pictures."""
    pages = [*TABLES, *(page for _, page, _, _ in front_sections())]
    return list(map(str, dict.fromkeys([EXPECTED_FILE, *pages, *pictures().values()])))


def write(results: Path, path: Path = EXPECTED_FILE) -> str:
    """Record the run as its CPU kind's row, copy its pictures, render the pages; the kind."""
    kind = cpu_kind(hw := run_hardware(results))
    for src in pictures():
        if not (results / src).is_file():
            raise ValueError(
                f"{results / src}: no such file; draw it first (snakemake -c2 {results / src})"
            )
    rows = load(path) if path.exists() else {}
    git = provenance.git_state()  # the checkout writing the row: the tree that made the run
    tree = (git["commit"] or "unknown")[:7] + ("-dirty" if git["dirty"] else "")
    rows[kind] = {"[cpu_model]": hw.get("cpu_model") or "", "[tree]": tree}
    rows[kind] |= {"[date]": date.today().isoformat(), **measured(results)}
    out = text_io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for k in sorted(rows):
        meta = [rows[k][f"[{c}]"] for c in ("cpu_model", "tree", "date")]
        w.writerows([k, *meta, q, v] for q, v in sorted(values(rows[k]).items()))
    pages = _rendered(rows, kind)  # before any file is written: a page without its lines stops
    io.write_text(path, out.getvalue())
    for src, dst in pictures().items():
        io.atomic_write(dst, lambda tmp, src=src: shutil.copyfile(results / src, tmp))
    for page, text in pages.items():
        io.write_text(page, text)
    return kind


def _rendered(rows: dict[str, dict[str, str]], kind: str) -> dict[Path, str]:
    """Each page's text with :data:`TABLES` and the :func:`front` sections rendered in."""
    sections = {(page, TABLE): table(rows) for page, table in TABLES.items()}
    texts: dict[Path, str] = {}
    for (page, name), body in (sections | front(rows, kind)).items():
        texts[page] = _put(texts.get(page) or page.read_text(), name, body, page)
    return texts


def _put(text: str, name: str, body: str, page: Path) -> str:
    """``text`` (of ``page``) with ``body`` between the :func:`marks` of ``name``."""
    begin, end = marks(name)
    if begin not in text or end not in text:
        raise ValueError(f"{page}: no '{begin}' ... '{end}' lines to write between")
    before, rest = text.split(begin, 1)
    return f"{before}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ablate expected",
        description="Compare a finished embedded default with the expected results of its CPU "
        f"kind ({EXPECTED_FILE}); --write records it as that kind's row.",
    )
    ap.add_argument("--results", type=Path, default=Path("results"), help="(default: results)")
    ap.add_argument(
        "--write",
        action="store_true",
        help=f"record this run as its CPU kind's row of {EXPECTED_FILE}, copy its pictures "
        f"and render the pages from the file (writes {', '.join(_written())})",
    )
    args = ap.parse_args(argv)
    try:
        if args.write:
            kind = write(args.results)
            print(f"ablate expected: {kind}: written to {', '.join(_written())}")
            return 0
        kind = cpu_kind(run_hardware(args.results))
        rows = load()
    except (OSError, ValueError) as exc:
        print(f"ablate expected: {exc}", file=sys.stderr)
        return 2
    result = compare(rows, kind, measured(args.results))
    print("\n".join(result.lines(args.results)))
    return 0 if result.ok else 1
