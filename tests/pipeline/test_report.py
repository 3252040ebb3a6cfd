"""The Snakemake report of the pipeline (rules/report.smk): every table a person reads opens from
its icon, the claims pages, the landing page, the workaround of Snakemake's EmbeddedImage. (The
mask study's figures themselves: tests/mask/test_report.py.)"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

import pandas as pd
import snakemake

# ------------------------------------------------------------- what the report opens from its icon

ROOT = Path(__file__).resolve().parents[2]
#: The MIME types Snakemake's report viewer opens from a result's icon (snakemake 9:
#: report/html_reporter/template/components/abstract_view_manager.js); any other file (a CSV, a
#: Markdown page) is only offered as a download, so a table a person reads there must be HTML.
OPENS = {"text/html", "image/svg+xml", "image/png", "image/jpeg", "application/pdf"}
#: Data tables in the report to be downloaded (for a spreadsheet), each with an HTML or figure
#: view of its numbers beside it or in STATUS.
DOWNLOADS = {
    "recovery.csv",
    "bridge/summary.csv",
    "bridge/infer/{run_id}/summary.csv",
}


def report_outputs() -> dict[str, str]:
    """Every ``report()``-flagged output of the rules -> its path pattern (under results/)."""
    from ablate.bridge import layout
    from ablate.core.planner.files import PLAN_FILES
    from ablate.mask import layout as mask_layout

    forms = {
        r'out\("([^"]+)"\)': str,
        r'out\(P\["(\w+)"\]\)': mask_layout.PATTERNS.__getitem__,
        r'mout\("(\w+)"\)': mask_layout.PATTERNS.__getitem__,  # a mask model's file (mask.models)
        r'out\(PLAN_FILES\["(\w+)"\]\)': PLAN_FILES.__getitem__,
        r'bout\("(\w+)"\)': layout.PATTERNS.__getitem__,
    }
    found = {}
    for smk in sorted(ROOT.glob("rules/**/*.smk")):
        for m in re.finditer(r"\breport\(\s*([^,]+),", smk.read_text()):
            expr = m.group(1).strip()
            paths = [f(x.group(1)) for form, f in forms.items() if (x := re.fullmatch(form, expr))]
            assert paths, f"{smk.name}: report({expr}, ...) is a form this test cannot resolve"
            found[f"{smk.relative_to(ROOT)}: {expr}"] = paths[0]
    return found


def test_the_report_opens_every_table_a_person_reads():
    items = report_outputs()
    claims = {k: v for k, v in items.items() if "claims" in v}
    # both studies' claims tables: the report showed their CSV / Markdown as a dead icon
    # (the mask study's twice: a model's, and a multi-model config's cross-model table)
    assert sorted(set(claims.values())) == ["bridge/claims.html", "claims/mask.html"], claims
    for where, path in items.items():
        mime, _ = mimetypes.guess_type(path)
        assert mime in OPENS or path in DOWNLOADS, f"{where}: {path} ({mime}) does not open"
    viewer = Path(snakemake.__file__).parent / (
        "report/html_reporter/template/components/abstract_view_manager.js"
    )
    if viewer.exists():  # the installed Snakemake opens exactly these
        assert set(re.findall(r'case "([^"]+)":', viewer.read_text())) == OPENS


def test_claims_html_page(tmp_path):
    from ablate.core.reports import claims

    def row(claim, evidence, test, p_value):  # in claims.COLUMNS order
        values = ["demo", claim, claim, "supported", evidence, test, p_value, 40, "x"]
        return dict(zip(claims.COLUMNS, values, strict=True))

    df = pd.DataFrame(
        [
            row("a", "A 0.9 - B 0.5: diff +0.400", "paired bootstrap (10000)", 1 / 10001),
            row("b", "<C> 0.9", "one-sided z vs 0.3", 0.0),
        ],
        columns=claims.COLUMNS,
    )
    claims.write_claims(df, tmp_path / "c.csv", tmp_path / "c.md", tmp_path / "c.html")
    page = (tmp_path / "c.html").read_text()
    assert page.startswith("<html>") and "<h1>Claims: demo</h1>" in page
    assert "<td>&lt;0.0001</td>" in page and "<td>&lt;1e-300</td>" in page  # never p=0
    assert "<td>&lt;C&gt; 0.9</td>" in page  # escaped
    assert "A minus B" in page and "A minus B" in (tmp_path / "c.md").read_text()


# ---------------------------------------------------------------------- the report's first screen


def landing_page(files: list[Path], config: dict) -> str:
    """workflow/report/workflow.rst rendered as `snakemake --report` renders it (Jinja with the
    config and the report's files, then docutils), with the Snakefile's image directive."""
    from types import SimpleNamespace

    from docutils.core import publish_parts
    from jinja2 import Environment

    directive_globals: dict = {}
    exec(compile((ROOT / "rules/report.smk").read_text(), "report.smk", "exec"), directive_globals)
    text = (ROOT / "workflow/report/workflow.rst").read_text()
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    rst = env.from_string(text).render(
        snakemake=SimpleNamespace(config=config),
        categories={},
        files=[SimpleNamespace(path=f) for f in files],
    )
    return publish_parts(rst, writer_name="html")["html_body"]


def test_landing_page_shows_the_result_first(tmp_path, monkeypatch):
    """Headline claims (per-task rows left out) with their numbers and verdicts, then the score
    plot embedded, before the description's prose."""
    from ablate.core.reports import claims

    monkeypatch.chdir(tmp_path)
    row = dict(zip(claims.COLUMNS, ["mask", "c", "s", "supported", "", "t", 0.5, 40, "x"]))
    df = pd.DataFrame(
        [
            {
                **row,
                "claim": "prefix_recovers_more",
                "evidence": "3B 0.743 - 3A 0.616: diff +0.127 [95% CI +0.098, +0.156], p=1.6e-17",
                "p_value": 1.6e-17,
            },
            {**row, "claim": "ablation_hurts/emb_pair", "evidence": "per task"},
        ],
        columns=claims.COLUMNS,
    )
    (tmp_path / "claims").mkdir()
    claims.write_claims(df, "claims/mask.csv", "claims/mask.md", "claims/mask.html")
    (tmp_path / "plots").mkdir()
    Path("plots/scores.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    config = {
        "studies": ["mask"],
        "mask": {"model": {"source": "embedded"}, "eval": {"ablated_policy": "prefill_bidir"}},
    }
    files = [Path("claims/mask.html"), Path("plots/scores.png")]
    page = landing_page(files, config)
    headline, prose = page.index("prefix_recovers_more"), page.index("<p>")
    image = page.index('src="data:image/png')
    assert headline < image < prose, page
    # the text takes the page's width (the rule graph goes under it), so the plot shows near its size
    assert page.index(".prose.max-w-lg { max-width: none; }") < image
    assert "diff +0.127, p=1.6e-17" in page and "<strong>supported" in page
    assert "emb_pair" not in page and "per task" not in page
    # a run without those files: the description alone
    assert "<table" not in landing_page([], config) and "<img" not in landing_page([], config)


def test_a_non_inferiority_claim_says_so_on_the_first_screen(tmp_path, monkeypatch):
    """A side-effect claim supported beside a negative difference: its verdict on the first
    screen says what it claims, "at most 0.1 below"."""
    from ablate.core.reports import claims

    monkeypatch.chdir(tmp_path)
    evidence = "3B under causal 0.950 - base under causal 0.954 (margin -0.1): diff -0.004 [...]"
    test = "non-inferiority z (margin 0.1, one-sided)"
    row = ["mask", "prefix_side_effect_small", "s", "supported", evidence, test, 1e-20, 1000, "x"]
    df = pd.DataFrame([row], columns=claims.COLUMNS)
    (tmp_path / "claims").mkdir()
    claims.write_claims(df, "claims/mask.csv", "claims/mask.md", "claims/mask.html")
    config = {
        "studies": ["mask"],
        "mask": {"model": {"source": "embedded"}, "eval": {"ablated_policy": "prefill_bidir"}},
    }
    page = landing_page([Path("claims/mask.html")], config)
    assert "<strong>supported (claim: at most 0.1 below)</strong>" in page, page
    assert "diff -0.004, p=1e-20" in page


def test_snakemakes_own_embeddedimage_links_the_file(tmp_path, monkeypatch):
    """The upstream bug rules/report.smk works around: snakemake.report's EmbeddedImage puts its
    embedding mixin second in its bases, so docutils' Image.run runs alone and the page links the
    file (a self-contained report cannot follow it). When this fails, upstream fixed it: drop the
    workaround."""
    from docutils.core import publish_parts
    from docutils.parsers.rst import directives
    from snakemake.report import EmbeddedImage

    monkeypatch.chdir(tmp_path)
    Path("scores.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    directives.register_directive("embeddedimage", EmbeddedImage)
    stock = publish_parts(".. embeddedimage:: scores.png\n", writer_name="html")["html_body"]
    assert 'src="scores.png"' in stock and "data:image" not in stock
    fixed: dict = {}
    exec(compile((ROOT / "rules/report.smk").read_text(), "report.smk", "exec"), fixed)
    ours = publish_parts(".. embeddedimage:: scores.png\n", writer_name="html")["html_body"]
    assert 'src="data:image/png' in ours
