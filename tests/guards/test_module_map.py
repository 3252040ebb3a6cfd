"""docs/design.md's module map is the code's (ablate.core.module_map): every package and module
under src/ with its docstring's first sentence, so a module added, renamed or removed without
`ablate map --write` fails here. The map's own unit tests: tests/core/test_module_map.py."""

from __future__ import annotations

from pathlib import Path

from ablate.core import module_map

REPO = Path(__file__).resolve().parents[2]


def test_the_page_is_the_generated_map():
    assert module_map.page_map(REPO / module_map.PAGE) == module_map.render(
        REPO / module_map.SOURCE
    ), (
        f"{module_map.PAGE}'s module map is not the code's: run `{module_map.COMMAND}` in the checkout"
    )
