"""docs/training.md quotes the training step as it is: the quote and the code cannot drift apart."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

from ablate.core.training import loop

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def _without_docstring(source: str) -> str:
    fn = ast.parse(source).body[0]
    doc = fn.body[0]
    lines = source.splitlines(keepends=True)
    return "".join(lines[: doc.lineno - 1] + lines[doc.end_lineno :])


def test_the_quoted_step_is_the_code():
    quoted = re.search(
        r"One step \(`loop\.step`\), as it is:\n\n```python\n(.*?)```", DOC.read_text(), re.S
    )
    assert quoted, "docs/training.md lost its quote of loop.step"
    code = _without_docstring(textwrap.dedent(inspect.getsource(loop.step)))
    assert quoted.group(1) == code
