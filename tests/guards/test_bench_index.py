"""bench/README.md stays an honest index: every result file the docs or the measurements file
cite is in its claims table and exists, every script and result file the table names exists, and
no result file or script goes unlisted."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INDEX = "bench/README.md"
#: the texts whose claims the index covers
CITING = ("README.md", "config/README.md", "config/gpu_measurements.yaml", "docs/*.md")
RESULT = re.compile(r"bench/results/[\w./-]*\w\.(?:json|md)")
SCRIPT = re.compile(r"bench/[\w/]+\.py")


def table_rows(text: str) -> list[list[str]]:
    """The claims tables' rows (header and rule rows left out), as cells."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] != "claim" and not set(cells[0]) <= {"-", ":"}:
            rows.append(cells)
    return rows


def index_problems(root: Path = REPO) -> list[str]:
    text = (root / INDEX).read_text()
    rows = table_rows(text)
    listed = {f for r in rows for c in r for f in RESULT.findall(c)}
    problems = []
    for r in rows:
        if len(r) != 5:
            problems.append(f"row of {len(r)} cells, not claim/script/command/file/machine: {r[0]}")
            continue
        for f in SCRIPT.findall(r[1]):
            if not (root / f).is_file():
                problems.append(f"script {f} (row: {r[0][:60]}) does not exist")
        for f in RESULT.findall(r[3]):
            if not (root / f).is_file():
                problems.append(f"result file {f} (row: {r[0][:60]}) does not exist")
    cited = {}
    for pattern in CITING:
        for path in sorted(root.glob(pattern)):
            for f in RESULT.findall(path.read_text()):
                cited.setdefault(f, path.relative_to(root).as_posix())
    for f, where in sorted(cited.items()):
        if not (root / f).is_file():
            problems.append(f"{where} cites {f}, which does not exist")
        if f not in listed:
            problems.append(f"{where} cites {f}, which no row of {INDEX} lists")
    kept = sorted(p for p in (root / "bench/results").glob("*") if p.is_file())
    for p in kept:
        f = p.relative_to(root).as_posix()
        if f not in listed:
            problems.append(f"{f} is in no row of {INDEX} (cite it, or move it to archive/)")
    for p in sorted((root / "bench").rglob("*.py")):
        f = p.relative_to(root).as_posix()
        if f not in text and p.name not in text:
            problems.append(f"{f} is not named in {INDEX}")
    return problems


def test_the_bench_index_lists_every_cited_result_and_script():
    assert index_problems() == []


def _copy(tmp_path: Path) -> Path:
    for pattern in (*CITING, INDEX, "bench/**/*.py", "bench/results/**/*"):
        for p in REPO.glob(pattern):
            if p.is_file():
                out = tmp_path / p.relative_to(REPO)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, out)
    return tmp_path


def test_a_row_removed_from_the_index_is_found(tmp_path):
    root = _copy(tmp_path)
    index = root / INDEX
    lines = index.read_text().splitlines(keepends=True)
    gone = next(i for i, line in enumerate(lines) if "bench_packing_h100_steady.json" in line)
    index.write_text("".join(lines[:gone] + lines[gone + 1 :]))
    found = index_problems(root)
    assert any("bench_packing_h100_steady.json, which no row" in p for p in found), found


def test_a_missing_result_file_or_script_is_found(tmp_path):
    root = _copy(tmp_path)
    (root / "bench/results/generate_h100.md").unlink()
    (root / "bench/bench_eval.py").unlink()
    found = index_problems(root)
    assert any("generate_h100.md (row" in p for p in found), found
    assert any("script bench/bench_eval.py" in p for p in found), found
