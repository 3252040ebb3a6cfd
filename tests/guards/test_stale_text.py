"""Text that names the code stays true: the repository paths that docs, profiles, configs and
rules name exist, and a package docstring that lists its modules lists all of them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: a repository path: top folder, then a file with an extension (no wildcard or {pattern})
PATH = re.compile(
    r"(?<![\w./-])((?:src|rules|workflow|tests|bench|profiles|config|docs)/[\w./-]*\w"
    r"\.(?:py|smk|yaml|yml|md|json|rst|toml))(?![\w{*])"
)


def _texts(root: Path) -> list[Path]:
    globs = ("profiles/**/*.yaml", "docs/*.md", "config/*.yaml", "rules/**/*.smk", "src/**/*.py")
    return [root / "README.md", root / "config/README.md", root / "Snakefile"] + [
        p for g in globs for p in sorted(root.glob(g))
    ]


def missing_paths(root: Path = ROOT) -> list[str]:
    found = []
    for f in _texts(root):
        if not f.exists():
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            found += [
                f"{f.relative_to(root)}:{n}: {p}"
                for p in PATH.findall(line)
                if not (root / p).exists()
            ]
    return found


def test_named_paths_exist():
    assert missing_paths() == []


def test_a_missing_path_is_found(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "here.py").write_text("")
    (tmp_path / "README.md").write_text("see src/here.py and src/gone.py, not src/{x}.py\n")
    assert missing_paths(tmp_path) == ["README.md:1: src/gone.py"]


def modules_left_out(src: Path = ROOT / "src" / "ablate") -> list[str]:
    """Per package whose docstring lists its modules ("Modules" / "Module map"): the modules
    it leaves out (a module counts as listed when its name appears as ``name`` or ``.name``)."""
    out = []
    for init in sorted(src.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if not re.search(r"\bModule(s| map)\b", doc):
            continue
        for mod in sorted(p.stem for p in init.parent.glob("*.py")):
            if mod.startswith("_"):
                continue
            if not re.search(rf"(``|\.){mod}\b", doc):
                out.append(f"{init.parent.relative_to(src.parent)}: {mod}")
    return out


def test_package_docstrings_list_every_module():
    assert modules_left_out() == []


def test_a_module_left_out_is_found(tmp_path):
    pkg = tmp_path / "ablate" / "p"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Modules: ``a``, :mod:`~ablate.p.b`."""\n')
    for name in ("a", "b", "c"):
        (pkg / f"{name}.py").write_text("")
    assert modules_left_out(tmp_path / "ablate") == ["ablate/p: c"]


def unused_names(root: Path = ROOT) -> list[str]:
    """Public top-level names of src/ablate that nothing else names: no code, test, bench
    script, rule, doc or packaged task YAML (an lm-eval ``!function`` names a function there):
    their definition is their only occurrence: dead code."""
    globs = ("src/**/*.py", "tests/**/*.py", "bench/**/*.py", "workflow/**/*.py", "rules/**/*.smk")
    globs += ("docs/*.md", "src/**/*.yaml")
    texts = [p.read_text() for g in globs for p in root.glob(g)]
    texts += [(root / f).read_text() for f in ("Snakefile", "README.md") if (root / f).exists()]
    words: dict[str, int] = {}
    for t in texts:
        for w in re.findall(r"\w+", t):
            words[w] = words.get(w, 0) + 1
    out = []
    for path in sorted((root / "src" / "ablate").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            else:
                continue
            for name in names:
                if not name.startswith("_") and words.get(name, 0) < 2:
                    out.append(f"{path.relative_to(root)}:{node.lineno}: {name}")
    return out


def test_no_dead_names():
    assert unused_names() == []


def test_a_dead_name_is_found(tmp_path):
    pkg = tmp_path / "src" / "ablate"
    pkg.mkdir(parents=True)
    (pkg / "m.py").write_text("USED = 1\nDEAD = 2\n\ndef _f():\n    return USED\n")
    assert unused_names(tmp_path) == ["src/ablate/m.py:2: DEAD"]


#: a line that starts an assignment (``NAME =``, ``NAME: type =``, ``a.b, c =``); a line this does
#: not match is judged by the module's syntax tree
ASSIGNMENT = re.compile(r"[\w.]+(?:\s*,\s*[\w.]+)*\s*(?::[^=]+)?[-+*/|&]?=(?!=)")


def orphan_doc_comments(root: Path = ROOT) -> list[str]:
    """``path:line`` of every ``#:`` comment (a name's documentation, as Sphinx reads it) in the
    Python of src/, tests/, bench/ and workflow/ with no assignment right under it: what it
    documented is gone or moved away from it."""
    out = []
    for folder in ("src", "tests", "bench", "workflow"):
        for path in sorted((root / folder).rglob("*.py")):
            text = path.read_text()
            lines = [line.strip() for line in text.splitlines()]
            assigned = None
            for i, line in enumerate(lines):
                if not line.startswith("#:") or (i and lines[i - 1].startswith("#")):
                    continue
                end = next((j for j in range(i, len(lines)) if not lines[j].startswith("#")), i)
                if ASSIGNMENT.match(lines[end]):
                    continue
                if assigned is None:
                    nodes = ast.walk(ast.parse(text))
                    kinds = ast.Assign | ast.AnnAssign | ast.AugAssign
                    assigned = {n.lineno for n in nodes if isinstance(n, kinds)}
                if end + 1 not in assigned:
                    out.append(f"{path.relative_to(root)}:{i + 1}")
    return out


def test_every_doc_comment_documents_an_assignment():
    assert orphan_doc_comments() == []


def test_an_orphan_doc_comment_is_found(tmp_path):
    """A ``#:`` block over a function (the dict it documented removed, as
    tests/guards/test_sizes.py had) or over a blank line is found; one over an assignment, a
    class attribute's and one the pattern does not read (an item's: the syntax tree) too, is
    not."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text(
        "#: the limits\n#: per path\nLIMITS = {}\n\n#: gone\ndef f():\n    pass\n\n"
        "class C:\n    #: its size\n    size: int = 0\n\n#: before a blank\n\nX = 1\n"
        '#: a key\nLIMITS["k"] = 2\n'
    )
    assert orphan_doc_comments(tmp_path) == ["src/m.py:5", "src/m.py:13"]


def adding_a_study_parts(page: Path = ROOT / "docs" / "design.md") -> list[str]:
    """The study parts docs/design.md's "Adding a study" describes, each a list item of its own
    (`` - `layout` (...``), in order."""
    text = page.read_text().split("## Adding a study", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^ {3}- `(\w+)`", text, re.M)


def test_adding_a_study_describes_the_registrys_parts():
    """The parts a new study writes are the modules the registry reads by default
    (:data:`ablate.studies.DEFAULT_PARTS`; the page once said ``study`` for ``layout``)."""
    from ablate.studies import DEFAULT_PARTS

    assert adding_a_study_parts() == list(DEFAULT_PARTS.values())
