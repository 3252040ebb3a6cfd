"""``ablate map``: the module map of docs/design.md, generated from the code so it cannot drift.

Each package and module under ``src/`` gets a line, the first sentence of its docstring, read from
the source (no import); tests/guards/test_module_map.py fails while the page and the code differ.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from ablate.core.outputs import io

#: where the packages are and the page the map is rendered into (relative to the checkout)
SOURCE, PAGE = Path("src"), Path("docs/design.md")
BEGIN, END = "<!-- module-map: begin (ablate map --write) -->", "<!-- module-map: end -->"
#: the command that renders the map: named wherever the page and the code differ
COMMAND = "ablate map --write"
#: a sentence's end: a full stop before white space or the end, not an abbreviation's
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)\.(?=\s|$)")
#: a Sphinx cross-reference (``:mod:`~.name```), shown on the page as the name in code
_ROLE = re.compile(r":[a-z]+:`~?\.?([^`]+)`")


def _summary(path: Path) -> str:
    """The first sentence of the module's docstring, on one line (a table cell: ``|`` escaped);
    refused where the module has none."""
    doc = ast.get_docstring(ast.parse(path.read_text(), str(path)))
    if not doc or not doc.strip():
        raise ValueError(
            f"{path}: no module docstring; write one (its first sentence is the module's line in "
            f"{PAGE}'s module map, {COMMAND})"
        )
    first = " ".join(doc.strip().split("\n\n", 1)[0].split())
    end = _SENTENCE_END.search(first)
    first = _ROLE.sub(r"`\1`", first[: end.start()] if end else first)
    return re.sub(r"``([^`]+)``", r"`\1`", first).replace("|", "\\|")


def _package_table(source: Path, package: Path) -> str:
    """A package's section: its name and first sentence, a line per module and subpackage."""
    rows = [
        (p.stem, _summary(p)) for p in sorted(package.glob("*.py")) if p.name != "__init__.py"
    ] + [
        (f"{p.name}/", _summary(p / "__init__.py"))
        for p in sorted(package.iterdir())
        if (p / "__init__.py").is_file()
    ]
    name = ".".join(package.relative_to(source).parts)
    lines = [f"### `{name}`", "", _summary(package / "__init__.py")]
    if rows:  # a package of one module (an executor plugin) has no table
        lines += ["", "| module | what it does (its docstring's first sentence) |", "|---|---|"]
        lines += [f"| `{mod}` | {text} |" for mod, text in sorted(rows)]
    return "\n".join(lines)


def render(source: Path = SOURCE) -> str:
    """The map: a section per package under ``source``, in name order."""
    packages = sorted(init.parent for init in source.rglob("__init__.py"))
    return "\n\n".join(_package_table(source, p) for p in packages)


def page_map(page: Path = PAGE) -> str:
    """The map between :data:`BEGIN` and :data:`END` of ``page``, as written."""
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{page}: no '{BEGIN}' ... '{END}' lines to write the module map between")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def write(source: Path = SOURCE, page: Path = PAGE) -> None:
    """Render the map of ``source`` into ``page`` between :data:`BEGIN` and :data:`END`."""
    page_map(page)  # refused where the markers are missing
    before, rest = page.read_text().split(BEGIN, 1)
    io.write_text(page, f"{before}{BEGIN}\n{render(source)}\n{END}{rest.split(END, 1)[1]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ablate map",
        description=f"The module map of {PAGE}: every package and module under {SOURCE}/ with "
        "its docstring's first sentence. Prints it; --write renders it into the page. Run from "
        "the checkout.",
    )
    ap.add_argument("--write", action="store_true", help=f"render the map into {PAGE}")
    args = ap.parse_args(argv)
    try:
        if args.write:
            write()
            print(f"ablate map: written to {PAGE}")
        else:
            print(render())
    except (OSError, ValueError, SyntaxError) as exc:
        print(f"ablate map: {exc}", file=sys.stderr)
        return 2
    return 0
