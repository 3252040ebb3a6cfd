"""The package stays readable at a glance: no module of src/ over :data:`MODULE_LINES` lines and no
function (a method and a nested function too) over :data:`FUNCTION_LINES` lines, read from the
source (ast: ``end_lineno - lineno + 1``, its decorators not counted). A module or function that
grows past them is split by what it does, not listed here."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MODULE_LINES = 600
FUNCTION_LINES = 80


def long_modules(root: Path = SRC, limit: int = MODULE_LINES) -> list[str]:
    """``path: N lines`` of every .py module under ``root`` longer than ``limit`` lines."""
    out = []
    for path in sorted(root.rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > limit:
            out.append(f"{path.relative_to(root)}: {n} lines (at most {limit})")
    return out


def long_functions(root: Path = SRC, limit: int = FUNCTION_LINES) -> dict[str, int]:
    """``path:function`` -> its lines, of every function under ``root`` longer than ``limit``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out[f"{path.relative_to(root)}:{node.name}"] = n
    return out


def test_no_module_over_the_limit():
    assert long_modules() == []


def test_no_function_over_the_limit():
    found = long_functions()
    over = [f"{k}: {n} lines (at most {FUNCTION_LINES})" for k, n in found.items()]
    assert over == []


def test_the_checks_find_a_long_module_and_function(tmp_path):
    """Both checks see what they are for: a long module, a long method, a long nested function,
    a decorated one counted from its ``def``."""
    body = "\n".join(f"    x{i} = {i}" for i in range(5))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "class C:\n    def method(self):\n"
        + "\n".join("    " + ln for ln in body.splitlines())
        + "\n\n\ndef outer():\n    def inner():\n"
        + "\n".join("    " + ln for ln in body.splitlines())
        + "\n    return inner\n\n\n@staticmethod\ndef short():\n    return 1\n"
    )
    assert long_modules(tmp_path, limit=10) == ["pkg/m.py: 22 lines (at most 10)"]
    assert long_functions(tmp_path, limit=5) == {
        "pkg/m.py:method": 6,
        "pkg/m.py:outer": 8,
        "pkg/m.py:inner": 6,
    }
