"""The Snakemake report's views of STATUS (ablate.core.reports.status): the status page as HTML, and
each record's provenance block (commit, dirty flag, config hash, model revision, package versions,
hardware) next to the numbers it backs, joined by ``run_id`` to the tables that cite it."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablate.core.outputs import io
from ablate.core.outputs.records import provenance_of, read_json
from ablate.core.reports.status import Row, build

_PROVENANCE_COLUMNS = [
    "study",
    "job",
    "numbers",
    "run_id",
    "commit",
    "dirty",
    "config_hash",
    "model revision",
    "packages",
    "hardware",
    "finished_at",
]
STYLE = (
    "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}</style>"
)


def _revision(record: dict) -> str:
    """The model revision a record names (finetune summary, metrics.json's model, a card)."""
    for block in (record, record.get("model"), record.get("checkpoint")):
        if isinstance(block, dict) and block.get("revision"):
            return str(block["revision"])
    return ""


def hardware_summary(hw: dict) -> str:
    """A record's ``hardware`` in one cell: the CPU and its cores, torch's instruction set, the
    BLAS, the numerics variables set, the GPUs; rows that differ here need not agree bit for bit
    (docs/guide.md, "What the embedded default shows")."""
    gpus = hw.get("gpus") or []
    names = ", ".join(sorted({g.get("name", "?") if isinstance(g, dict) else str(g) for g in gpus}))
    numerics = hw.get("numerics") or {}
    blas = " ".join(str(x) for x in (numerics.get("blas"), numerics.get("mkl")) if x)
    cells = [
        f"{hw.get('cpu_model') or hw.get('processor') or '?'} x{hw.get('cpu_count')}",
        hw.get("torch_cpu_capability"),
        blas,
        *(f"{k}={v}" for k, v in (numerics.get("env") or {}).items()),
    ]
    gpu = f"; {len(gpus)}x {names}" if gpus else ""
    return ", ".join(c for c in cells if c) + gpu


def _provenance_row(row: Row, workdir: Path) -> dict[str, Any] | None:
    record = read_json(workdir / row.job.record) if row.job.record else None
    if record is None:
        return None
    prov = provenance_of(record)
    git = prov.get("git") or {}
    packages = prov.get("packages") or {}
    return {
        "study": row.job.study,
        "job": row.job.name,
        "numbers": row.headline,
        "run_id": prov.get("run_id", ""),
        "commit": (git.get("commit") or "")[:12],
        "dirty": git.get("dirty"),
        "config_hash": prov.get("config_hash", ""),
        "model revision": _revision(record),
        "packages": ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v),
        "hardware": hardware_summary(prov.get("hardware") or {}),
        "finished_at": prov.get("finished_at", ""),
    }


def _table(head: list[str], body: list[list[str]], cell: Callable[[str], str] = html.escape) -> str:
    th = "".join(f"<th>{cell(c)}</th>" for c in head)
    rows = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><tr>{th}</tr>{rows}</table>"


def html_table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    return _table(columns, [[str(r.get(c, "")) for c in columns] for r in rows])


def markdown_html(text: str) -> str:
    """HTML of the Markdown :func:`~ablate.core.reports.status.render` writes (no renderer)."""

    def inline(t: str) -> str:
        t = html.escape(t)
        t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", t)

    out: list[str] = []
    table: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                table.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
            continue
        if table:
            out.append(_table(table[0], table[1:], inline))
            table = []
        if m := re.match(r"(#+) (.*)", line):
            out.append(f"<h{len(m[1])}>{inline(m[2])}</h{len(m[1])}>")
        elif line.startswith("- "):
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line:
            out.append(f"<p>{inline(line)}</p>")
    return "\n".join(out)


def write_all(config: dict, md: str, status_html: str, provenance_html: str) -> list[Row]:
    """The status rule's outputs: STATUS.md and the report's two pages; STATUS's rows."""
    text, rows = build(config)
    io.write_text(md, text)
    head = f"<html><head><meta charset='utf-8'>{STYLE}</head><body>"
    io.write_text(status_html, f"{head}{markdown_html(text)}</body></html>\n")
    table = [p for r in rows if (p := _provenance_row(r, Path(".")))]
    io.write_text(
        provenance_html,
        f"{head}<h2>Provenance of every record</h2><p>One row per job output with a provenance "
        "block; <code>run_id</code> is the key the recovery table, the claims and summary tables "
        f"cite.</p>{html_table(_PROVENANCE_COLUMNS, table)}</body></html>\n",
    )
    return rows
