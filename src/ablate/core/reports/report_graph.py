"""The report's rule graph with one node per rule (rules/report.smk installs it).

Snakemake's ``rulegraph_spec`` keeps one job of each rule per level of the DAG's topological
sort, so a rule whose jobs sit at two depths (``eval_model``) showed twice. Here each rule is one
node at its deepest job's level.
"""

from __future__ import annotations

from typing import Any

STEP = 50  # vertical distance between nodes, as Snakemake's spec places them


def rulegraph_spec(dag: Any) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """The (spec, xmax, ymax) Snakemake's HTML reporter takes, one node per rule."""
    level: dict[str, int] = {}
    for i, jobs in enumerate(dag.toposorted()):
        for job in jobs:
            level[job.rule.name] = i  # levels come in order: the deepest job's wins
    rules = sorted(level, key=lambda r: (level[r], r))
    idx = {r: i for i, r in enumerate(rules)}
    nodes = [{"rule": r, "fx": 10, "fy": i * STEP} for i, r in enumerate(rules)]
    edges = sorted(
        {
            (idx[dep.rule.name], idx[job.rule.name])
            for job in dag.jobs
            for dep in dag.dependencies[job]
            if dep.rule.name != job.rule.name
        }
    )
    links = [
        {"target": t, "source": s, "sourcerule": rules[s], "targetrule": rules[t], "value": 1}
        for s, t in edges
    ]
    # adjacent nodes are drawn with a straight link, the others with an arc (as Snakemake's)
    spec = {
        "nodes": nodes,
        "links": [x for x in links if x["target"] - x["source"] != 1],
        "links_direct": [x for x in links if x["target"] - x["source"] == 1],
    }
    return spec, 100, max((n["fy"] for n in nodes), default=0)
