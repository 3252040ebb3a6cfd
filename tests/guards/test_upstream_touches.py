"""Private upstream names stay in ``ablate.upstream``: a scan (AST) of ``src/ablate`` and
``workflow/`` (and, by line, of ``Snakefile`` and ``rules/**/*.smk``) that fails where code outside
``ablate/upstream/`` uses a private name of torch, transformers, lm-eval, Snakemake or datasets,
or patches one of their modules.

A touch is any of:

- an import of a private module or name (``import torch._dynamo``, ``from lm_eval.tasks._yaml_loader
  import ...``);
- a private attribute on a name bound to one of those libraries (``torch._foreach_norm``,
  ``dist.distributed_c10d._abort_process_group``);
- an assignment to an attribute of such a name (a patch: ``evaluator.add_env_info = ...``);
- a private attribute (``x._name``, or ``getattr``/``setattr``/``hasattr`` of ``"_name"``) that the
  package never defines for its own objects (as a function, class, module or class-body name, or
  ``self._name`` of a class of its own): an object's private attribute the code did not give it
  is an upstream one (``config._attn_implementation``, ``layer._compiled_call_impl``); a mark the
  package sets on an upstream object is named ``_ablate_*`` (``_ablate_backend_check``);
- ``self._name`` in a subclass of an upstream class where ``_name`` is that class's own
  (``self._get_metadata_path`` in a ``FileSystemReader``, ``self._optimizer_step_pre_hooks`` in an
  ``Optimizer``).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ("torch", "transformers", "lm_eval", "snakemake", "datasets")
LIBRARIES = "|".join(UPSTREAM)
#: The one place private upstream names may be used.
HOME = ROOT / "src" / "ablate" / "upstream"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _upstream(dotted: str) -> bool:
    return dotted.split(".")[0] in UPSTREAM


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None when the chain is not rooted at a plain name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _bound(tree: ast.AST) -> dict[str, str]:
    """Names the module binds to an upstream module or object: alias -> dotted upstream path."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _upstream(a.name):
                    bound[a.asname or a.name.split(".")[0]] = (
                        a.name if a.asname else a.name.split(".")[0]
                    )
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and _upstream(node.module)
        ):
            for a in node.names:
                bound[a.asname or a.name] = f"{node.module}.{a.name}"
    return bound


def _attr_names(tree: ast.AST):
    """Every attribute name the module reads or writes: (node, name, owner expression)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            yield node, node.attr, node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            yield node, node.args[1].value, node.args[0]


def _classes(tree: ast.AST):
    """(class node, its enclosing-free base chains) for every class in the module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            yield node, [_chain(b) for b in node.bases]


def _resolve(chain: list[str], bound: dict[str, str]):
    """The upstream object a base-class chain names, or None."""
    if not chain or chain[0] not in bound:
        return None
    path = [*bound[chain[0]].split("."), *chain[1:]]
    for cut in range(len(path), 0, -1):
        try:
            obj = importlib.import_module(".".join(path[:cut]))
        except ImportError:
            continue
        for part in path[cut:]:
            obj = getattr(obj, part, None)
        return obj
    return None


def _replaces_code(chain: list[str], bound: dict[str, str]) -> bool:
    """Whether assigning ``a.b.c`` replaces upstream code (a function, class or module), not a
    setting (``torch.backends.cuda.matmul.allow_tf32 = True``)."""
    now = _resolve(chain, bound)
    return now is None or callable(now) or inspect.ismodule(now)


@functools.cache
def _upstream_own(cls, name: str) -> bool:
    """Whether ``name`` belongs to the upstream class ``cls``: a class attribute, an instance
    attribute its methods set, or a name its package's modules use (a protocol among its
    classes, such as the optimizers' ``_step_supports_amp_scaling``)."""
    for base in inspect.getmro(cls):
        if not _upstream(base.__module__ or ""):
            continue
        if name in vars(base) or re.search(
            rf"\b{re.escape(name)}\b", _package_text(base.__module__)
        ):
            return True
    return False


@functools.cache
def _package_text(module: str) -> str:
    """The source of every module in ``module``'s package."""
    folder = Path(inspect.getfile(importlib.import_module(module))).parent
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("*.py")))


def _sources() -> list[tuple[Path, ast.AST]]:
    paths = [
        p
        for root in (ROOT / "src" / "ablate", ROOT / "workflow")
        for p in sorted(root.rglob("*.py"))
        if HOME not in p.parents
    ]
    return [(p, ast.parse(p.read_text(), str(p))) for p in paths]


_BASES: dict[ast.AST, dict] = {}  # by the tree itself (kept alive: no id reused)


def _upstream_bases(tree: ast.AST, bound: dict[str, str]) -> dict[ast.ClassDef, list[type]]:
    """Each class of the module that subclasses an upstream class, with those classes."""
    if tree in _BASES:
        return _BASES[tree]
    found = _BASES[tree] = {}
    for cls, bases in _classes(tree):
        resolved = [b for b in (_resolve(c, bound) for c in bases if c) if inspect.isclass(b)]
        if resolved:
            found[cls] = resolved
    return found


def _own_names(sources) -> set[str]:
    """Private names the package defines for its own objects (``_ablate_*``: the mark it sets on
    an upstream object, such as a hooked module, is its own by name)."""
    own = set()
    for _, tree in sources:
        upstream = _upstream_bases(tree, _bound(tree))
        body_of = {id(n): cls for cls in upstream for n in cls.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                bases = upstream.get(body_of.get(id(node)), ())
                for t in targets:
                    for sub in ast.walk(t):
                        if isinstance(sub, ast.Name) and not any(
                            _upstream_own(b, sub.id) for b in bases
                        ):
                            own.add(sub.id)
            elif isinstance(node, ast.alias):
                own.add((node.asname or node.name).split(".")[0])
        for cls, _ in _classes(tree):
            for node in ast.walk(cls):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.ctx, ast.Store)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in ("self", "cls")
                    and not any(_upstream_own(b, node.attr) for b in upstream.get(cls, ()))
                ):
                    own.add(node.attr)
    return own


def touches(sources=None) -> list[str]:
    """Every private upstream touch outside ``ablate.upstream``: ``path:line: what``."""
    sources = _sources() if sources is None else sources
    own = _own_names(sources)
    found = []
    for path, tree in sources:
        rel = path.relative_to(ROOT)
        found += [f"{rel}:{node.lineno}: {what}" for node, what in _module_touches(tree, own)]
    return sorted(set(found + _smk_touches()))


def _module_touches(tree: ast.AST, own: set[str]):
    """(node, what) for each touch in one module."""
    bound = _bound(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _upstream(a.name) and any(_private(p) for p in a.name.split(".")):
                    yield node, f"import {a.name}"
        elif isinstance(node, ast.ImportFrom) and node.module and _upstream(node.module):
            names = [*node.module.split("."), *(a.name for a in node.names)]
            if any(_private(p) for p in names):
                yield node, f"from {node.module} import {', '.join(a.name for a in node.names)}"
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for sub in t.elts if isinstance(t, ast.Tuple) else [t]:
                    chain = _chain(sub) if isinstance(sub, ast.Attribute) else None
                    if chain and chain[0] in bound and _replaces_code(chain, bound):
                        yield sub, f"patches {'.'.join(chain)}"
    yield from _attribute_touches(tree, bound, own)


def _attribute_touches(tree: ast.AST, bound: dict[str, str], own: set[str]):
    """(node, what) for each private attribute of an upstream module, class or object."""
    imported = {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    methods_of = {}
    for cls, upstream_bases in _upstream_bases(tree, bound).items():
        for node in ast.walk(cls):
            methods_of[id(node)] = upstream_bases
        for node in cls.body:  # a class attribute upstream reads (a protocol it declares)
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(t, ast.Name) and _private(t.id):
                        if any(_upstream_own(b, t.id) for b in upstream_bases):
                            yield node, f"{cls.name}.{t.id} of {upstream_bases[0].__name__}"
    for node, name, owner in _attr_names(tree):
        if not _private(name):
            continue
        chain = _chain(node) if isinstance(node, ast.Attribute) else None
        if chain and chain[0] in bound:
            first = next(i for i, part in enumerate(chain) if _private(part))
            yield node, ".".join(chain[: first + 1])
        elif chain and chain[0] in imported:
            continue  # another library's (os._exit)
        elif isinstance(owner, ast.Name) and owner.id in ("self", "cls") and id(node) in methods_of:
            if any(_upstream_own(b, name) for b in methods_of[id(node)]):
                yield node, f"self.{name} of {methods_of[id(node)][0].__name__}"
        elif name not in own and not name.startswith("_ablate_"):
            yield node, f"<object>.{name}"


def _smk_touches(paths=None) -> list[str]:
    """The same for the rule files, line by line: their Python is not a module ``ast`` reads."""
    found = []
    for path in paths or [ROOT / "Snakefile", *sorted((ROOT / "rules").rglob("*.smk"))]:
        lines = path.read_text().splitlines()
        bound = {}
        for line in lines:
            if re.match(r"(import|from)\s", line):
                try:
                    bound.update(_bound(ast.parse(line)))
                except SyntaxError:
                    continue
        for i, line in enumerate(lines, 1):
            rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
            if re.match(r"(import|from)\s", line) and re.search(rf"\b({LIBRARIES})\b\S*\._", line):
                found.append(f"{rel}:{i}: {line.strip()}")
            for alias in bound:
                if re.search(rf"(?<![\w.]){re.escape(alias)}(\.\w+)*\._[a-z]", line):
                    found.append(f"{rel}:{i}: {line.strip()}")
                elif re.match(rf"\s*{re.escape(alias)}(\.\w+)+\s*=[^=]", line):
                    found.append(f"{rel}:{i}: patches: {line.strip()}")
    return found


def test_private_upstream_names_only_in_ablate_upstream():
    found = touches()
    assert not found, (
        "private upstream names used outside src/ablate/upstream/ (move each touch into the "
        "library's module there, numbered, with its test in tests/upstream/):\n" + "\n".join(found)
    )


def test_scan_sees_each_kind_of_touch(tmp_path):
    """The scan finds each kind of touch in a module written for it, and not the package's own
    private names."""
    code = """
import torch
import torch._dynamo
from lm_eval.tasks._yaml_loader import load_yaml
from lm_eval import evaluator
from torch.distributed.checkpoint import FileSystemReader

class Reader(FileSystemReader):
    def read(self):
        self._mine = 1
        return self._get_metadata_path(0), self._mine

class Own:
    def __init__(self):
        self._kept = 1

def f(config, x):
    torch._foreach_norm([x])
    evaluator.add_env_info = print
    config._attn_implementation = "eager"
    getattr(config, "_no_split_modules", None)
    return Own()._kept
"""
    path = ROOT / "src" / "ablate" / "_scan_probe.py"
    found = touches([(path, ast.parse(code))])
    found = [f.split(": ", 1)[1] for f in found if f.startswith("src/ablate/_scan_probe.py")]
    assert sorted(found) == sorted(
        [
            "import torch._dynamo",
            "from lm_eval.tasks._yaml_loader import load_yaml",
            "self._get_metadata_path of FileSystemReader",
            "torch._foreach_norm",
            "patches evaluator.add_env_info",
            "<object>._attn_implementation",
            "<object>._no_split_modules",
        ]
    ), found


def test_scan_sees_a_rule_files_patch(tmp_path):
    """The rule files' scan finds a patch of an upstream module and a private import."""
    path = tmp_path / "report.smk"
    path.write_text(
        "import snakemake.report.html_reporter as html_reporter\n"
        "from lm_eval.tasks._yaml_loader import load_yaml\n"
        "rule a:\n    output: 'x'\n"
        "html_reporter.rulegraph_spec = print\n"
    )
    found = [f.split(": ", 1)[1] for f in _smk_touches([path])]
    assert found == [
        "from lm_eval.tasks._yaml_loader import load_yaml",
        "patches: html_reporter.rulegraph_spec = print",
    ], found
