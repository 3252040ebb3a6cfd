"""docs/step.md follows one optimizer step through the code: every function it names exists and
its quote of the training loop is the code, so the page and the code cannot drift apart."""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from pathlib import Path

from ablate.core.training import loop

DOC = Path(__file__).resolve().parents[2] / "docs" / "step.md"
#: a name the page gives in full: `ablate.<module path>.<attribute path>`
NAME = re.compile(r"`(ablate(?:\.\w+)+)`")


def resolves(name: str) -> bool:
    """Whether ``name`` is a module of the package, or an attribute path of one."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_named_function_exists():
    names = sorted(set(NAME.findall(DOC.read_text())))
    assert len(names) > 20, "docs/step.md lost its names"
    gone = [n for n in names if not resolves(n)]
    assert gone == [], (
        f"docs/step.md names what the code no longer has: {gone}; follow the step again"
    )


def test_a_name_that_went_is_found():
    assert resolves("ablate.core.training.loop.step")
    assert resolves("ablate.core.training.optim.MasterWeightsOptimizer.clip_")
    assert not resolves("ablate.core.training.loop.gone")
    assert not resolves("ablate.core.no_such_module.step")


def test_the_quoted_loop_is_the_code():
    quoted = re.search(r"whose loop is:\n\n *```python\n(.*?) *```", DOC.read_text(), re.S)
    assert quoted, "docs/step.md lost its quote of loop.train's loop"
    quote = textwrap.dedent(quoted.group(1))
    lines = inspect.getsource(loop.train).splitlines(keepends=True)
    n = len(quote.splitlines())
    windows = ("".join(lines[i : i + n]) for i in range(len(lines) - n + 1))
    assert quote in (textwrap.dedent(w) for w in windows), (
        "docs/step.md's quote of loop.train differs"
    )
