"""The package's layering, read from the source (AST): ``ablate.core`` names no study, nor do its
schemas (``ablate/core/*.schema.yaml``: a key, enum value, const or default naming a study, its
attention backend or a key its schema part adds to a core definition) or the core's rules
(``rules/*.smk``: a quoted name or a study's package); no import circle, also none hidden inside a
function (an import under ``if TYPE_CHECKING:`` never runs: it names a type for the annotations
only, and is no edge); and the core's layers (:data:`CORE_LAYERS`: the config, the results trees,
the reports) import downward only, no back-arrow between two of them."""

from __future__ import annotations

import ast
import re
from importlib import import_module
from pathlib import Path

import pytest
import yaml

from ablate.studies import STUDIES

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "ablate"


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


def _schema_values(node, where: str = ""):
    """(key path, text) of every key, enum value, const and default of a schema (its prose, the
    descriptions, left out)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("description", "$comment"):
                continue
            yield f"{where}/{k}", str(k)
            if k in ("enum", "const", "default"):
                for x in v if isinstance(v, list) else [v]:
                    for text in x if isinstance(x, list) else [x]:
                        yield f"{where}/{k}", str(text)
            yield from _schema_values(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _schema_values(v, f"{where}/{i}")


def _defines(node: dict) -> bool:
    """A schema node that defines its key (a type, enum, const or a reference), not one that
    only sets the default or the wording of a key defined elsewhere."""
    return any(k in node for k in ("type", "enum", "const", "$ref"))


def study_things() -> dict[str, str]:
    """What belongs to a study besides its name: its attention backends (``ATTENTION_BACKENDS``
    of its package), and the keys its schema part adds to a core definition it extends (a
    ``$defs`` node with a ``$ref`` into the core's: ``packing`` of ``mask_finetune_params``):
    text -> study."""
    from ablate.core.config import schema_path

    things = {}
    for study, package in STUDIES.items():
        things.update(
            dict.fromkeys(getattr(import_module(package), "ATTENTION_BACKENDS", {}), study)
        )
        part = yaml.safe_load(schema_path(package).read_text())
        for node in part.get("$defs", {}).values():
            if str(node.get("$ref", "")).startswith("#/$defs/"):
                for key, sub in node.get("properties", {}).items():
                    if _defines(sub):
                        things[key] = study
    return things


def study_names_in_core_files(
    src: Path = SRC, rules: Path = ROOT / "rules", things: dict[str, str] | None = None
) -> list[str]:
    """A study, or a study's thing (:func:`study_things`), named in the core's schemas
    (structure, not prose) or a study named in the core's rules (the top-level rules/*.smk: a
    quoted study name, or a study's package): ``file: where``."""
    things = study_things() if things is None else things
    found = []
    for path in sorted((src / "core").glob("*.schema.yaml")):
        for where, text in _schema_values(yaml.safe_load(path.read_text())):
            if _names_a_study(text, word=True):
                found.append(f"{path.name}: {where} {text!r}")
            elif text in things:
                found.append(f"{path.name}: {where} {text!r} ({things[text]}'s)")
    quoted = re.compile(r"""["']([\w.]+)["']|\b(ablate\.\w+)""")
    for path in sorted(rules.glob("*.smk")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for m in quoted.finditer(code):
                text = m.group(1) or m.group(2)
                if _names_a_study(text, word=m.group(1) is not None):
                    found.append(f"rules/{path.name}:{n}: {text!r}")
    return found


def test_core_schemas_and_rules_name_no_study():
    assert study_names_in_core_files() == []


def test_the_check_finds_a_study_in_a_core_schema_or_rule(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "core" / "config.schema.yaml").write_text(
        "properties:\n  studies: {default: [mask], description: the mask study}\n"
        "  bridge: {type: object}\n"
    )
    (tmp_path / "rules" / "plan.smk").write_text(
        '# the mask study\nx = config["bridge"]\nfrom ablate.mask import study\n'
    )
    found = study_names_in_core_files(tmp_path, tmp_path / "rules")
    assert found == [
        "config.schema.yaml: /properties/studies/default 'mask'",
        "config.schema.yaml: /properties/bridge 'bridge'",
        "rules/plan.smk:2: 'bridge'",
        "rules/plan.smk:3: 'ablate.mask'",
    ]


def test_the_check_finds_a_study_thing_in_a_core_schema(tmp_path):
    """A core schema that defaults to a study's attention backend or owns a key a study adds to
    the core's training params (as the core did before both moved to the mask's part)."""
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "config.schema.yaml").write_text(
        "$defs:\n  finetune_params:\n    properties:\n"
        "      attn_implementation: {type: string, default: sdpa_prefix_split}\n"
        "      packing: {type: boolean, default: false}\n"
        "      seed: {type: integer, default: 0}\n"
    )
    things = study_things()
    assert things["sdpa_prefix_split"] == things["packing"] == "mask" and "seed" not in things
    found = study_names_in_core_files(tmp_path, tmp_path / "rules", things)
    assert found == [
        "config.schema.yaml: /$defs/finetune_params/properties/attn_implementation/default "
        "'sdpa_prefix_split' (mask's)",
        "config.schema.yaml: /$defs/finetune_params/properties/packing 'packing' (mask's)",
    ]


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


def study_keys_in_core_training(
    root: Path | None = None, things: dict[str, str] | None = None
) -> list[str]:
    """Every read of a study's key (:func:`study_things`) in ``ablate/core/training``: an
    attribute of that name (``p.packing``) or a whole string literal (``getattr(p, "packing")``,
    ``p["packing"]``): ``path:line: key (study's)``. The loop's params are the core's keys; a
    study acts on its own keys through its recipe."""
    root, things = root or SRC, study_things() if things is None else things
    found = []
    for path, tree in _modules(root / "core" / "training"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                key = node.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                key = node.value
            else:
                continue
            if key in things:
                rel = path.relative_to(root.parent)
                found.append(f"{rel}:{node.lineno}: {key} ({things[key]}'s)")
    return found


def test_core_training_reads_no_study_key():
    assert study_keys_in_core_training() == []


def test_the_check_finds_a_study_key_read_in_core_training(tmp_path):
    """The check itself: the loop's former ``getattr(p, "packing", False)`` and an attribute read
    of a study's key are found; a core key is not."""
    training = tmp_path / "ablate" / "core" / "training"
    training.mkdir(parents=True)
    (training / "loop.py").write_text(
        'def setup(p):\n    return getattr(p, "packing", False), p.sft_format, p.seed\n'
    )
    found = study_keys_in_core_training(tmp_path / "ablate")
    assert sorted(found) == [
        "ablate/core/training/loop.py:2: packing (mask's)",
        "ablate/core/training/loop.py:2: sft_format (mask's)",
    ]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _for_annotations_only(tree: ast.AST) -> set[int]:
    """The nodes under ``if TYPE_CHECKING:`` (not its ``else``): code that never runs."""
    found: set[int] = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in (
            getattr(test, "id", None),
            getattr(test, "attr", None),
        ):
            found.update(id(n) for child in node.body for n in ast.walk(child))
    return found


def import_graph(root: Path | None = None) -> dict[str, set[str]]:
    """module -> the package's modules it imports, at module level or inside a function (a
    function-level import hides a circle, it does not break it); an import for the annotations
    only (under ``if TYPE_CHECKING:``, with postponed annotations) is never run and no edge."""
    root = root or SRC
    trees = {_module_name(p, root): (p, t) for p, t in _modules(root)}
    graph: dict[str, set[str]] = {m: set() for m in trees}
    for mod, (path, tree) in trees.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        skip = _for_annotations_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in trees:  # `from pkg import name`: the module or its package
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def package_graph() -> dict[str, set[str]]:
    """The package's import graph, built once for the checks that read it."""
    return import_graph()


def test_no_import_circle(package_graph):
    assert cycles(package_graph) == []


def test_the_check_finds_a_circle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "ablate" / "core"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from ablate.core import b\n")
    (pkg / "b.py").write_text("def f():\n    from ablate.core.a import x\n")
    (pkg / "c.py").write_text("from . import a, b\nfrom .a import x\n")
    graph = import_graph(tmp_path / "ablate")
    assert graph["ablate.core.c"] == {"ablate.core.a", "ablate.core.b"}
    assert cycles(graph) == [["ablate.core.a", "ablate.core.b"]]


def test_an_import_for_the_annotations_only_is_no_edge(tmp_path):
    """ablate.bridge.switches names params' BridgeParams in its annotations only (params calls
    switches at run time); the else of ``if TYPE_CHECKING:`` runs, and is an edge."""
    pkg = tmp_path / "ablate" / "core"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from ablate.core import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ablate.core.a import X\n"
    )
    (pkg / "c.py").write_text(
        "import typing\nif typing.TYPE_CHECKING:\n    from ablate.core import a\n"
        "else:\n    from ablate.core import b\n"
    )
    graph = import_graph(tmp_path / "ablate")
    assert graph["ablate.core.b"] == set() and graph["ablate.core.c"] == {"ablate.core.b"}
    assert cycles(graph) == []


#: core's layers, lowest first: a module of one imports no module of a later one (inside a
#: function neither), so the dependency between any two goes one way, never both (a circle)
CORE_LAYERS = ("ablate.core.config", "ablate.core.trees", "ablate.core.reports")


def upward_imports(graph: dict[str, set[str]], layers: tuple[str, ...] = CORE_LAYERS) -> list[str]:
    """``module -> module`` of every import (:func:`import_graph`) from a layer of ``layers``
    into a later one: the back-arrows."""

    def layer(module: str) -> int | None:
        found = [
            i for i, name in enumerate(layers) if module == name or module.startswith(name + ".")
        ]
        return found[0] if found else None

    return [
        f"{mod} -> {t}"
        for mod, targets in sorted(graph.items())
        for t in sorted(targets)
        if layer(mod) is not None and layer(t) is not None and layer(t) > layer(mod)
    ]


def test_core_layers_import_downward_only(package_graph):
    assert upward_imports(package_graph) == []


def test_the_check_finds_an_upward_import_hidden_in_a_function(tmp_path):
    """A results-tree module reaching up to a report inside a function, and the config to a
    results-tree module, as both did (``ablate.core.trees.deltas`` the claims' ``compare``,
    ``ablate.core.config`` ``results_origin.normalized``); a report reading a tree is no
    back-arrow."""
    core = tmp_path / "ablate" / "core"
    for package in ("trees", "reports"):
        (core / package).mkdir(parents=True)
        (core / package / "__init__.py").write_text("")
    (core.parent / "__init__.py").write_text("")
    (core / "__init__.py").write_text("")
    (core / "config.py").write_text("def f():\n    from ablate.core.trees.origin import g\n")
    (core / "trees" / "origin.py").write_text("def g():\n    pass\n")
    (core / "trees" / "deltas.py").write_text(
        "def h():\n    from ablate.core.reports import claims\n"
    )
    (core / "reports" / "claims.py").write_text("from ablate.core.trees import origin\n")
    assert upward_imports(import_graph(tmp_path / "ablate")) == [
        "ablate.core.config -> ablate.core.trees.origin",
        "ablate.core.trees.deltas -> ablate.core.reports.claims",
    ]
