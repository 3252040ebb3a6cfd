"""Only product code in the package: every public function, method and class of ``src/ablate``
that the tests or benchmarks use is used by the product too (``src/``, ``workflow/``, ``rules/``,
``Snakefile``), and so is every keyword parameter (or dataclass field with a default) that they
pass. A test oracle or a benchmark's control lives in tests/ or bench/, built from public pieces;
a switch that only a test flips is a switch the product does not need.

Read from the source (AST), by name: a use is a name, an attribute or an import of that name; a
keyword's use is a call of that name (or ``functools.partial`` of it) passing the keyword, passing
enough positional arguments to reach it, or passing ``**kwargs``. Matching by name can only miss a
test-only piece (another piece of the same name is used), never invent one."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PRODUCT = [SRC, ROOT / "workflow", ROOT / "rules", ROOT / "Snakefile"]
TESTING = [ROOT / "tests", ROOT / "bench"]

#: Public pieces that the product reaches other than by name in its code, each with where from.
REACHED_OTHERWISE = {
    "main": "pyproject.toml [project.scripts] and `python -m` entry points",
    "run_scores": "ablate.core.reports.runs reads a study's status part's by name (studies.side)",
    "run_numbers": "ablate.core.reports.runs reads a study's status part's by name (studies.side)",
    "cancel": "Snakemake's scheduler calls its executor's (ablate.upstream.executors overrides it)",
}

#: Known test-only pieces, each to leave this list when its switch goes (issue 70). No new
#: entry: give the test its own control instead.
KNOWN = {
    # the toy study (tests/toy_study) is a study package as mask and bridge are
    "make_job(record=)": "the toy study names its record",
    "launch(log=)": "the tests read the launched processes' output from a file",
    "tiny_ministral3_config": "the tests' and benches' name for tiny_config('ministral3')",
}


@dataclass(frozen=True)
class Piece:
    """A public function, method or class of the package and its keyword parameters (those with
    a default; a dataclass's fields with a default)."""

    name: str
    where: str
    keywords: tuple[str, ...]
    positional: tuple[str, ...]  # every parameter passable by position, in order


def _files(paths: list[Path]):
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in {".py", ".smk", ".yaml"})
        # the Snakefile, rules and YAML (lm-eval's ``!function module.name``) are not Python:
        # read by word below


def _is_dataclass(node: ast.ClassDef) -> bool:
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "dataclass":
            return True
    return False


def _function_piece(node, where: str, method: bool) -> Piece:
    a = node.args
    positional = [p.arg for p in a.posonlyargs + a.args]
    if method and positional and positional[0] in {"self", "cls"}:
        positional = positional[1:]
    with_default = positional[len(positional) - len(a.defaults) :] if a.defaults else []
    kwonly = [p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
    return Piece(node.name, where, tuple(with_default + kwonly), tuple(positional))


def _is_protocol(node: ast.ClassDef) -> bool:
    """A typing Protocol: an interface the studies follow by shape, never named by them."""
    return any(ast.unparse(b).split(".")[-1] == "Protocol" for b in node.bases)


def _class_piece(node: ast.ClassDef, where: str) -> Piece:
    fields, keywords = [], []
    if _is_dataclass(node):
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                value = ast.unparse(stmt.value) if stmt.value is not None else ""
                if "ClassVar" in ast.unparse(stmt.annotation) or "init=False" in value:
                    continue
                fields.append(stmt.target.id)
                if stmt.value is not None:
                    keywords.append(stmt.target.id)
    return Piece(node.name, where, tuple(keywords), tuple(fields))


def pieces(root: Path = SRC / "ablate") -> list[Piece]:
    """The package's public functions, public methods of its public classes, and its classes."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            where = f"{path.relative_to(root.parent)}:{node.lineno}"
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if not node.name.startswith("_"):
                    found.append(_function_piece(node, where, method=False))
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                if _is_protocol(node):
                    continue
                found.append(_class_piece(node, where))
                for stmt in node.body:
                    if isinstance(stmt, ast.FunctionDef) and not stmt.name.startswith("_"):
                        line = f"{path.relative_to(root.parent)}:{stmt.lineno}"
                        found.append(_function_piece(stmt, line, method=True))
    return found


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


@dataclass
class Uses:
    """The names a body of code uses, and per called name the keywords it passes."""

    names: set[str]
    keywords: dict[str, set[str]]  # callee -> keywords passed
    positional: dict[str, int]  # callee -> most positional arguments passed
    spread: set[str]  # callees called with **kwargs
    unparsed: set[str]  # names called in Snakemake text: with which keywords is not read
    passed: set[str]  # functions passed as a value (a callback): called with what is not read


#: an entry point's name in a string: ``"ablate.bridge.training.entries:train_entry"``
ENTRY = re.compile(r"ablate(?:\.\w+)+:(\w+)")


def uses(paths: list[Path]) -> Uses:
    u = Uses(set(), {}, {}, set(), set(), set())
    for path in _files(paths):
        text = path.read_text()
        try:
            tree = ast.parse(text, str(path))
        except SyntaxError:  # Snakemake or YAML: every word is a use; a call, with any keyword
            u.names.update(re.findall(r"[A-Za-z_]\w*", text))
            u.unparsed.update(re.findall(r"([A-Za-z_]\w*)\s*\(", text))
            continue
        imported = {
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom)
            for a in n.names
        }
        for node in ast.walk(tree):
            # an entry point named as "module:function" (parallel.launch, job_script.run_entry):
            # the function is called, with arguments not read here
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                entry = ENTRY.fullmatch(node.value)
                if entry:
                    u.names.add(entry[1])
                    u.passed.add(entry[1])
            if isinstance(node, ast.Name):
                u.names.add(node.id)
            elif isinstance(node, ast.Attribute):
                u.names.add(node.attr)
            elif isinstance(node, ast.ImportFrom | ast.Import):
                u.names.update(a.name.split(".")[-1] for a in node.names)
            if not isinstance(node, ast.Call):
                continue
            callee, args = _callee(node.func), list(node.args)
            for value in [*args, *(k.value for k in node.keywords)]:  # a function as a value
                if isinstance(value, ast.Attribute) or (
                    isinstance(value, ast.Name) and value.id in imported
                ):
                    u.passed.add(_callee(value))
            if callee == "partial" and args:  # functools.partial(f, ...) calls f
                callee, args = _callee(args[0]), args[1:]
            if callee is None:
                continue
            u.keywords.setdefault(callee, set()).update(k.arg for k in node.keywords if k.arg)
            if any(k.arg is None for k in node.keywords):
                u.spread.add(callee)
            # ``f(*args, ...)``: any number of positional arguments
            n = len(args) if not any(isinstance(a, ast.Starred) for a in args) else 10**6
            u.positional[callee] = max(u.positional.get(callee, 0), n)
    return u


def _passes(u: Uses, piece: Piece, keyword: str, unread: bool) -> bool:
    """Whether ``u`` passes ``keyword`` to ``piece``; ``unread``: a call whose arguments were
    not read (in Snakemake text, or of a function passed as a value) counts as passing it."""
    if unread and (piece.name in u.unparsed or piece.name in u.passed):
        return True
    # ``Spec(**config)`` fills a class's fields from data; a function's ``**kwargs`` forwarding
    # is not counted (``model.generate(**kwargs)`` would hide every ``generate`` keyword)
    spread = piece.name in u.spread and piece.name[:1].isupper()
    if spread or keyword in u.keywords.get(piece.name, ()):
        return True
    # a dataclass's field set by ``dataclasses.replace(obj, field=...)``
    if piece.name[:1].isupper() and keyword in u.keywords.get("replace", ()):
        return True
    index = piece.positional.index(keyword) if keyword in piece.positional else None
    return index is not None and u.positional.get(piece.name, 0) > index


def only_tested(product: Uses, testing: Uses, found: list[Piece], known: dict = KNOWN) -> list[str]:
    """``where: name`` for each piece, and ``where: name(keyword=)`` for each keyword, that the
    tests or benchmarks use and the product does not."""
    out = []
    for piece in found:
        if piece.name in REACHED_OTHERWISE:
            continue
        if piece.name not in product.names:
            if piece.name in testing.names and piece.name not in known:
                out.append(f"{piece.where}: {piece.name}")
            continue
        for keyword in piece.keywords:
            name = f"{piece.name}({keyword}=)"
            if name in known:
                continue
            if _passes(testing, piece, keyword, False) and not _passes(
                product, piece, keyword, True
            ):
                out.append(f"{piece.where}: {name}")
    return out


@pytest.fixture(scope="module")
def scanned() -> list[str]:
    """Every piece the tests or benchmarks use and the product does not, KNOWN ones included:
    the scan (every module of src, tests and bench parsed and walked) made once for the two
    tests below (one xdist group: on one worker)."""
    return only_tested(uses(PRODUCT), uses(TESTING), pieces(), known={})


def _name(found: str) -> str:
    return found.split(": ", 1)[1]


@pytest.mark.xdist_group("guards:product_code")
def test_package_holds_only_product_code(scanned):
    found = [f for f in scanned if _name(f) not in KNOWN]  # as only_tested(known=KNOWN)
    assert not found, (
        "used only by tests or benchmarks (move the oracle to tests/, the control to bench/, or "
        "drop the switch):\n" + "\n".join(found)
    )


def test_guard_sees_a_test_only_function_and_keyword(tmp_path):
    """The guard's own power: a function and a keyword that only a test uses are found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "def oracle(x):\n    return x\n\ndef product(x, *, switch=False):\n    return x\n"
    )
    (tmp_path / "app.py").write_text("from pkg.m import product\nproduct(1)\n")
    (tmp_path / "t.py").write_text(
        "from pkg.m import oracle, product\noracle(product(1, switch=True))\n"
    )
    found = only_tested(uses([tmp_path / "app.py", pkg]), uses([tmp_path / "t.py"]), pieces(pkg))
    assert [f.split(": ")[1] for f in found] == ["oracle", "product(switch=)"]


@pytest.mark.xdist_group("guards:product_code")
def test_known_exceptions_are_still_test_only(scanned):
    """Each KNOWN entry is still a test-only piece: one whose switch went leaves the list."""
    names = {_name(f) for f in scanned}
    assert not set(KNOWN) - names, f"no longer test-only, drop from KNOWN: {set(KNOWN) - names}"
