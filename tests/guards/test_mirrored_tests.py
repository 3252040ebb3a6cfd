"""The tests mirror the package: every module of src/ablate has its own test module at the same
path, ``<part>/<group>/<name>.py`` -> ``tests/<part>/<group>/test_<name>.py`` (a package's
``__init__.py`` that defines a function or class -> ``tests/<part>/<group>/test_<group>.py``; a
top-level module ``<name>.py`` -> ``tests/test_<name>.py``), or is in :data:`UNMIRRORED` with
why. Tests of a feature that spans modules stay beside them (tests/pipeline, tests/cluster:
end-to-end runs; tests/guards: the repository as a whole)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "ablate"
TESTS = ROOT / "tests"

#: a module of src/ablate (path relative to it) -> why it has no test module of its own
UNMIRRORED = {
    "core/config.py": "tests/core/test_config_schema.py, test_config_guards.py, test_config_yaml_errors.py: "
    "three topics (the schema, its guards, YAML errors): a test_config.py would only rename one",
    "core/planner/files.py": "file names and a column name only: no behaviour of its own",
    "core/planner/plan.py": "make_plan, the package's own entry: "
    "tests/core/planner/test_planner.py (the package's mirror)",
    "mask/training/__main__.py": "only calls cli.main (python -m ablate.mask.training): "
    "tests/mask/training/test_cli.py",
}


def has_behaviour(path: Path) -> bool:
    """Whether a package's ``__init__.py`` defines a function or class (not only re-exports)."""
    tree = ast.parse(path.read_text())
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for n in tree.body
    )


def mirrored(module: Path, package: Path, tests: Path) -> Path:
    """The test module that mirrors ``module`` (a file under ``package``)."""
    rel = module.relative_to(package)
    name = rel.parent.name if rel.name == "__init__.py" else rel.stem
    return tests / rel.parent / f"test_{name}.py"


def unmirrored(package: Path = PACKAGE, tests: Path = TESTS) -> dict[str, Path]:
    """Each module of ``package`` (relative path) without its mirrored test module -> that path."""
    out = {}
    for module in sorted(package.rglob("*.py")):
        if module.name == "__init__.py" and not has_behaviour(module):
            continue
        want = mirrored(module, package, tests)
        if not want.is_file():
            out[module.relative_to(package).as_posix()] = want
    return out


def test_every_module_has_its_test_module_or_says_why_not():
    missing = {m: p for m, p in unmirrored().items() if m not in UNMIRRORED}
    assert not missing, "\n".join(
        f"src/ablate/{m} has no test module: create {p.relative_to(ROOT)} (its unit tests), "
        "or add it to UNMIRRORED with why"
        for m, p in missing.items()
    )


def test_every_listed_exception_is_still_one():
    """An entry whose module has gained its test module, or is gone, leaves the list."""
    stale = sorted(set(UNMIRRORED) - set(unmirrored()))
    assert not stale, (
        f"remove from UNMIRRORED (mirrored now, or no such module): {', '.join(stale)}"
    )


def test_a_module_without_its_test_module_is_found(tmp_path):
    package, tests = tmp_path / "core", tmp_path / "tests"
    for rel in ["a.py", "g/__init__.py", "g/b.py", "g/c.py", "h/__init__.py"]:
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text("X = 1\n")
    (package / "h/__init__.py").write_text("def make():\n    pass\n")  # behaviour of its own
    for rel in ["test_a.py", "g/test_b.py", "test_c.py"]:  # c's test is not at its path
        (tests / rel).parent.mkdir(parents=True, exist_ok=True)
        (tests / rel).write_text("")
    assert unmirrored(package, tests) == {
        "g/c.py": tests / "g/test_c.py",
        "h/__init__.py": tests / "h/test_h.py",
    }
