"""Report figures from synthetic pipeline outputs (no model needed)."""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path

import pandas as pd
import pytest
import snakemake

from ablate.mask import recovery, report


def _metrics(run_id, policy, scores):
    return {
        "run_id": run_id,
        "policy": policy,
        "tasks": {
            t: {"headline_metric": "acc", "score": s, "acc_stderr": 0.01, "n": 10, "chance": 0.25}
            for t, s in scores.items()
        },
        "macro": {
            "score": sum(scores.values()) / len(scores),
            "chance": 0.25,
            "n_tasks": len(scores),
        },
    }


def test_plot_scores_png(tmp_path):
    df = recovery.build_recovery(
        [
            dict(stage=1, variant="base", metrics=_metrics("a", "causal", {"x": 0.8, "y": 0.7})),
            dict(
                stage=2,
                variant="base",
                metrics=_metrics("b", "prefill_bidir", {"x": 0.4, "y": 0.5}),
            ),
            dict(
                stage=4,
                variant="3B",
                train_policy="prefix_bidir",
                metrics=_metrics("c", "prefill_bidir", {"x": 0.6, "y": 0.6}),
            ),
        ]
    )
    csv = tmp_path / "r.csv"
    df.to_csv(csv, index=False)
    out = report.plot_scores(csv, tmp_path / "plots" / "scores.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_plot_scores_with_seeds_gives_each_series_its_colour_and_integer_seeds(
    tmp_path, monkeypatch
):
    """The seeds3 overlay's shape: 3A and 3B with seeds 5, 6, 7 evaluated under both policies,
    14 bar series. tab10 alone repeated colours (3B-s6 looked like the base model), and the
    seeds read back from the CSV as floats were labelled s5.0."""
    import matplotlib.pyplot as plt

    entries = [
        dict(stage=1, variant="base", metrics=_metrics("a", "causal", {"x": 0.8, "y": 0.7})),
        dict(stage=2, variant="base", metrics=_metrics("b", "prefill_bidir", {"x": 0.4, "y": 0.5})),
    ]
    for v, policy in (("3A", "causal"), ("3B", "prefix_bidir")):
        for seed in (5, 6, 7):
            for p in ("causal", "prefill_bidir"):
                score = 0.5 + seed / 100
                entries.append(
                    dict(
                        stage=4,
                        variant=f"{v}-s{seed}",
                        base=v,
                        seed=seed,
                        train_policy=policy,
                        metrics=_metrics(f"{v}{seed}{p}", p, {"x": score, "y": score}),
                    )
                )
    csv = tmp_path / "r.csv"
    recovery.build_recovery(entries).to_csv(csv, index=False)
    monkeypatch.setattr(report.plt, "close", lambda fig: None)  # keep the figure to look at
    report.plot_scores(csv, tmp_path / "scores.png")
    fig = plt.figure(plt.get_fignums()[-1])
    bars, _, spread = fig.axes
    colors = [c.patches[0].get_facecolor() for c in bars.containers]
    assert len(colors) == 14 and len(set(colors)) == 14, colors
    seeds = sorted({t.get_text() for t in spread.texts})
    plt.close(fig)
    assert seeds == ["s5", "s6", "s7"]


def test_the_early_stop_line_marks_only_a_run_stopped_before_its_budget(tmp_path, monkeypatch):
    """The loss panel drew an "early stop" line at 5B's max_steps: its plateau rule fired at its
    last step. A dotted line now marks a run that stopped before its step budget only."""
    import matplotlib.axes

    drawn = []
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline", lambda ax, x, **kw: drawn.append(x))
    paths = []
    for name, done in (("5B", 400), ("3C", 250)):  # plateau at the budget; plateau before it
        p = tmp_path / name / "summary.json"
        p.parent.mkdir()
        p.write_text(
            json.dumps(
                {
                    "kind": "finetune",
                    "policy": "causal",
                    "max_steps": 400,
                    "steps_done": done,
                    "stop": {"reason": "plateau", "step": done},
                    "curves": {"train": [{"step": s, "loss": 3 / s} for s in range(1, done + 1)]},
                }
            )
        )
        paths.append(p)
    report.plot_loss_curves(paths, tmp_path / "loss.png")
    assert drawn == [250]


def test_plot_loss_curves_png(tmp_path):
    paths = []
    for name, kind, stop in [("base", "pretrain", "max_steps"), ("3B", "finetune", "plateau")]:
        p = tmp_path / name / "summary.json"
        p.parent.mkdir()
        p.write_text(
            json.dumps(
                {
                    "kind": kind,
                    "policy": "causal",
                    "steps_done": 30,
                    "stop": {"reason": stop},
                    "curves": {
                        "train": [{"step": s, "loss": 3 / s} for s in range(1, 31)],
                        "eval": [{"step": s, "eval_loss": 3.5 / s} for s in (10, 20, 30)],
                    },
                }
            )
        )
        paths.append(p)
    out = report.plot_loss_curves(paths, tmp_path / "loss.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="has no 'curves'"):
        report.plot_loss_curves([bad], tmp_path / "x.png")


def test_plot_scores_shows_drop_and_recovery(tmp_path):
    """The second panel draws the drop and the recovery with their intervals (from the CSV,
    where within_noise comes back as text)."""
    from fake_evals import correct_items, evaluation, shift

    s1 = {"x": correct_items(100, 80, 0)}
    s2 = {"x": shift(s1["x"], -30, 1)}
    entries = [
        (1, "base", "causal", s1),
        (2, "base", "prefill_bidir", s2),
        (4, "3B", "prefill_bidir", {"x": shift(s2["x"], 10, 2)}),
        (5, "5B", "prefill_bidir", {"x": shift(s2["x"], 1, 3)}),
    ]
    df = recovery.build_recovery(
        [
            dict(stage=st, variant=v, metrics=m, samples=s)
            for st, v, p, items in entries
            for m, s in [evaluation(f"{v}-{p}", p, items)]
        ]
    )
    csv = tmp_path / "r.csv"
    df.to_csv(csv, index=False)
    out = report.plot_scores(csv, tmp_path / "scores.png")
    from PIL import Image

    img = Image.open(out)
    width, height = img.size
    assert width > 2 * height  # two panels side by side, the legend under them
    # its smallest text, as the report test scales it by the size the browser shows it
    assert float(img.text[report.MIN_FONT_KEY]) == pytest.approx(
        report.MIN_FONT_PT * report.DPI / 72, abs=0.01
    )


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


def fake_dag():
    """The DAG's shape that showed eval_model twice: the base model's evaluation one level
    after prepare_model, a finetune's evaluation one level after its finetune."""
    from types import SimpleNamespace

    class Job:  # hashed by identity, as Snakemake's jobs in its DAG's maps
        def __init__(self, rule):
            self.rule = SimpleNamespace(name=rule)

    prep, ft, ev_base, ev_ft, table = map(
        Job, ["prepare_model", "finetune", "eval_model", "eval_model", "recovery_table"]
    )
    deps = {prep: [], ft: [prep], ev_base: [prep], ev_ft: [ft], table: [ev_base, ev_ft]}
    levels = [[prep], [ft, ev_base], [ev_ft], [table]]
    return SimpleNamespace(jobs=list(deps), dependencies=deps, toposorted=lambda: levels)


def test_the_reports_rule_graph_shows_each_rule_once():
    from ablate.core.reports.report_graph import rulegraph_spec

    spec, _, ymax = rulegraph_spec(fake_dag())
    rules = [n["rule"] for n in spec["nodes"]]
    assert rules == ["prepare_model", "finetune", "eval_model", "recovery_table"]
    edges = {(x["sourcerule"], x["targetrule"]) for x in spec["links"] + spec["links_direct"]}
    assert edges == {
        ("prepare_model", "finetune"),
        ("prepare_model", "eval_model"),
        ("finetune", "eval_model"),
        ("eval_model", "recovery_table"),
    }
    assert [x["sourcerule"] for x in spec["links"]] == ["prepare_model"]  # the one arc
    assert ymax == 150


def test_snakemakes_own_rule_graph_shows_a_rule_per_level():
    """The upstream behaviour rules/report.smk replaces (ablate.core.reports.report_graph); when
    this fails, upstream shows each rule once: drop the replacement. The Snakefile installs ours."""
    from snakemake.report.rulegraph_spec import rulegraph_spec

    spec, _, _ = rulegraph_spec(fake_dag())
    assert [n["rule"] for n in spec["nodes"]].count("eval_model") == 2
    import snakemake.report.html_reporter as html_reporter

    from ablate.core.reports import report_graph

    exec(compile((ROOT / "rules/report.smk").read_text(), "report.smk", "exec"), {})
    assert html_reporter.rulegraph_spec is report_graph.rulegraph_spec
