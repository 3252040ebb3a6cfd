"""The package's layering, read from the source (AST): ``ablate.core`` names no study."""

from __future__ import annotations

import ast
from pathlib import Path

from ablate.studies import STUDIES

SRC = Path(__file__).resolve().parents[1] / "src" / "ablate"


def _modules(root: Path):
    for path in sorted(root.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _names_a_study(text: str, *, word: bool) -> str | None:
    """The study ``text`` names: its package ("ablate.mask", "ablate.mask.status") or, for a
    whole string literal (``word``), the study itself ("mask": a default naming a study)."""
    for study, package in STUDIES.items():
        if (word and text == study) or text == package or text.startswith(package + "."):
            return study
    return None


def study_names_in_core(root: Path | None = None) -> list[str]:
    """Every import of a study and every string literal (docstrings too) naming a study or its
    package, in any module under ``ablate/core``: ``path:line: what``."""
    root = root or SRC
    found = []
    for path, tree in _modules(root / "core"):
        for node in ast.walk(tree):
            texts, literal = [], None
            if isinstance(node, ast.Import):
                texts = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                texts = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                literal = node.value
                texts = [literal] + literal.replace("`", " ").replace(",", " ").split()
            for text in texts:
                study = _names_a_study(text.strip(".:()[]'\""), word=text == literal)
                if study:
                    rel = path.relative_to(root.parent)
                    found.append(f"{rel}:{node.lineno}: {study} ({text[:60]!r})")
                    break
    return found


def test_core_names_no_study():
    assert study_names_in_core() == []


def test_the_check_finds_a_study_named_in_core(tmp_path):
    """The check itself: a core module importing a study, or naming one in a default, is found."""
    core = tmp_path / "ablate" / "core"
    core.mkdir(parents=True)
    (core / "a.py").write_text("def f():\n    from ablate.mask import masks\n")
    (core / "b.py").write_text('def g(config):\n    return config.get("studies", ["bridge"])\n')
    (core / "c.py").write_text('"""Reads ``ablate.bridge.status``."""\n')
    (core / "d.py").write_text('x = "masked"  # not a study\n')
    found = study_names_in_core(tmp_path / "ablate")
    assert [f.split(":")[0] for f in found] == [
        "ablate/core/a.py",
        "ablate/core/b.py",
        "ablate/core/c.py",
    ]
