"""Lines and public names of a source tree (issue 83's measure of the house's size):
`python bench/tools/src_counts.py src` prints its lines (code, docstring, comment, blank) and
public names: top-level functions, classes and assigned names not starting with `_`, and the
public methods of public classes. Compare two trees with `git archive REV src | tar -x -C DIR`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def _docstring_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        if isinstance(node, kinds) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def _public_names(tree: ast.Module) -> int:
    n = 0
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if not node.name.startswith("_"):
                n += 1
                if isinstance(node, ast.ClassDef):
                    methods = (ast.FunctionDef, ast.AsyncFunctionDef)
                    n += sum(
                        isinstance(m, methods) and not m.name.startswith("_") for m in node.body
                    )
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            n += sum(isinstance(t, ast.Name) and not t.id.startswith("_") for t in targets)
    return n


def counts(root: Path) -> dict[str, int]:
    total = dict(lines=0, code=0, doc=0, comment=0, blank=0, public=0)
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        doc = _docstring_lines(tree)
        for i, line in enumerate(text.splitlines(), 1):
            total["lines"] += 1
            stripped = line.strip()
            kind = (
                "blank"
                if not stripped
                else "doc"
                if i in doc
                else "comment"
                if stripped.startswith("#")
                else "code"
            )
            total[kind] += 1
        total["public"] += _public_names(tree)
    return total


if __name__ == "__main__":
    print(" ".join(f"{k} {v}" for k, v in counts(Path(sys.argv[1])).items()))
