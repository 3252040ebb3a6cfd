"""Every number the planner uses can be traced to something a user can open: a measured one to
its raw output in the repository (bench/results/...) and the command that made it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MEASUREMENTS = REPO / "config" / "gpu_measurements.yaml"
#: A repository path named in a source or a docstring.
FILE = re.compile(r"\b((?:bench|config|docs|src|workflow)/[\w./-]+\.(?:json|md|csv|yaml|py))\b")
#: How a source names the command behind a measurement (or says it was not recorded).
COMMAND = re.compile(r"`[^`]*\b(python3?|snakemake|torchrun)\b[^`]*`|\bpython3? bench/\w+\.py\b")
NOT_RECORDED = "command not recorded"
#: Sections of measured numbers; the others hold published facts (datasheets, hub config.json,
#: lm-eval tasks) or stated estimates.
MEASURED = ("measurements", "job_overheads", "tokens_per_request", "scaling")
PUBLISHED = ("NVIDIA ", "config.json of ", "lm-eval ")
#: Places a user cannot open: outside the repository.
OUTSIDE = re.compile(r"shared findings|findings section|\blent\b", re.IGNORECASE)


def sources(node, where: str = "") -> Iterator[tuple[str, str]]:
    """(path in the file, source) of every ``source:`` key."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "source":
                yield where, str(v)
            else:
                yield from sources(v, f"{where}/{k}".lstrip("/"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from sources(v, f"{where}[{i}]")


def test_every_source_can_be_opened():
    found = list(sources(yaml.safe_load(MEASUREMENTS.read_text())))
    assert len(found) > 30
    for where, src in found:
        assert not OUTSIDE.search(src), f"{where}: {src!r} points outside the repository"
        files = FILE.findall(src)
        for f in files:
            assert (REPO / f).is_file(), f"{where}: {f} is not a file of the repository"
        if where.split("/")[0].split("[")[0] in MEASURED:
            assert any(f.startswith("bench/results/") for f in files), f"{where}: {src!r}"
            assert COMMAND.search(src) or NOT_RECORDED in src, f"{where}: no command: {src!r}"
        else:
            assert files or src.startswith(PUBLISHED) or "(estimate)" in src, f"{where}: {src!r}"


def test_a_copied_measurement_says_where_it_came_from():
    """A file copied into bench/results from outside says from where, on what, when and how."""
    text = (REPO / "bench/results/h200_baselines_findings.md").read_text()
    head = text.split("---")[0]
    for field in ("Where it came from", "Machine:", "Date:", "Command:"):
        assert field in head, field
    assert "0.219" in text and "31 s" in text and "40.6 GB" in text  # the numbers cited


def test_planner_code_cites_repository_files():
    for py in sorted((REPO / "src/ablate/core/planner").glob("*.py")):
        text = py.read_text()
        assert not OUTSIDE.search(text), f"{py.name} cites a source outside the repository"
        for f in FILE.findall(text):
            if f.startswith("bench/results/"):
                assert (REPO / f).is_file(), f"{py.name}: {f}"
