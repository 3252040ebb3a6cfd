"""The report's rule graph, one node per rule (:mod:`ablate.core.reports.report_graph`), on a
stand-in DAG of the shape that showed a rule twice: each rule once at its deepest job's level, an
edge where any job of one reads any job of the other, and the upstream behaviour it replaces."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


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


def test_a_rule_reading_itself_has_no_edge_and_a_level_sorts_by_name():
    from types import SimpleNamespace

    from ablate.core.reports.report_graph import STEP, rulegraph_spec

    class Job:
        def __init__(self, rule):
            self.rule = SimpleNamespace(name=rule)

    zeta, alpha, merge1, merge2 = map(Job, ["zeta", "alpha", "merge", "merge"])
    deps = {zeta: [], alpha: [], merge1: [zeta, alpha], merge2: [merge1]}
    levels = [[zeta, alpha], [merge1], [merge2]]
    dag = SimpleNamespace(jobs=list(deps), dependencies=deps, toposorted=lambda: levels)
    spec, xmax, ymax = rulegraph_spec(dag)
    assert [(n["rule"], n["fy"]) for n in spec["nodes"]] == [
        ("alpha", 0), ("zeta", STEP), ("merge", 2 * STEP)
    ]  # fmt: skip
    links = spec["links"] + spec["links_direct"]
    assert sorted((x["sourcerule"], x["targetrule"]) for x in links) == [
        ("alpha", "merge"), ("zeta", "merge")
    ]  # fmt: skip
    assert [x["sourcerule"] for x in spec["links_direct"]] == ["zeta"]  # adjacent: straight
    assert (xmax, ymax) == (100, 2 * STEP)
    empty = SimpleNamespace(jobs=[], dependencies={}, toposorted=lambda: [])
    assert rulegraph_spec(empty) == ({"nodes": [], "links": [], "links_direct": []}, 100, 0)
