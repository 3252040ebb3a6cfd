"""ablate.core.module_map: each module a line of its docstring's first sentence, the page's
marked section rewritten in place, a module without a docstring or a page without the markers
refused. (That docs/design.md is the generated map: tests/guards/test_module_map.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.core import module_map


def tiny_source(root: Path) -> Path:
    pkg = root / "src" / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""The package. More."""\n')
    (pkg / "a.py").write_text('"""``a``: one | two, e.g. three. Second sentence."""\n')
    (pkg / "sub" / "__init__.py").write_text('"""A subpackage, see :mod:`~pkg.a`."""\n')
    return root / "src"


def test_each_module_is_a_line_of_its_first_sentence(tmp_path):
    assert module_map.render(tiny_source(tmp_path)) == "\n".join(
        [
            "### `pkg`",
            "",
            "The package",
            "",
            "| module | what it does (its docstring's first sentence) |",
            "|---|---|",
            "| `a` | `a`: one \\| two, e.g. three |",
            "| `sub/` | A subpackage, see `pkg.a` |",
            "",
            "### `pkg.sub`",
            "",
            "A subpackage, see `pkg.a`",
        ]
    )


def test_a_module_added_is_written_into_the_page(tmp_path):
    source = tiny_source(tmp_path)
    page = tmp_path / "design.md"
    page.write_text(f"# Design\n\n{module_map.BEGIN}\n{module_map.END}\n\nAfter.\n")
    module_map.write(source, page)
    assert module_map.page_map(page) == module_map.render(source)
    (source / "pkg" / "b.py").write_text('"""The new one."""\n')
    assert module_map.page_map(page) != module_map.render(source)
    module_map.write(source, page)
    assert "| `b` | The new one |" in page.read_text()
    assert page.read_text().startswith("# Design\n\n") and page.read_text().endswith("\nAfter.\n")


def test_a_module_without_a_docstring_is_refused(tmp_path):
    source = tiny_source(tmp_path)
    (source / "pkg" / "bare.py").write_text("X = 1\n")
    with pytest.raises(ValueError, match=r"bare\.py: no module docstring; write one"):
        module_map.render(source)


def test_a_page_without_the_markers_is_refused(tmp_path):
    page = tmp_path / "design.md"
    page.write_text("# Design\n")
    with pytest.raises(ValueError, match="module-map: begin"):
        module_map.write(tiny_source(tmp_path), page)
