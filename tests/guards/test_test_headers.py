"""A test file says what it tests, not which issue asked for it: no test module's name or
docstring cites an issue number (:data:`ISSUE`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
#: an issue number as a header cites one: the word and a number, or a number after a hash
ISSUE = re.compile(r"\bissues? ?#?\d+|(?<![\w&])#\d+\b", re.IGNORECASE)


def citing_issues(tests: Path = TESTS) -> list[str]:
    """``<path>: <the citation>`` for each test module whose file name or docstring cites an
    issue number."""
    out = []
    for path in sorted(tests.rglob("test_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        out += [
            f"{path.relative_to(tests)}: {m}"
            for m in ISSUE.findall(f"{path.stem.replace('_', ' ')} {doc}")
        ]
    return out


def test_no_test_module_cites_an_issue():
    assert citing_issues() == [], "say what the file tests in place of the issue number"


def test_a_citing_header_is_found(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "test_a.py").write_text('"""Faults (issue 8): named."""\n')
    (tmp_path / "test_b.py").write_text('"""See #73, not a colour #fff or step 8."""\n')
    (tmp_path / "test_issue12.py").write_text('"""Fine."""\n')
    (tmp_path / "test_c.py").write_text('"""Clean: step 8 of 12."""\n')
    assert citing_issues(tmp_path) == [
        "core/test_a.py: issue 8",
        "test_b.py: #73",
        "test_issue12.py: issue12",
    ]
