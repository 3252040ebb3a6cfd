"""The mask study's side of STATUS.md (ablate.core.status): its job list as status rows, the
numbers of each record, the key results (recovery and claims tables) and the forecast of what
remains (the planner's plan.csv). No torch: `ablate status` must stay cheap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.core.planner.files import PLAN_FILES
from ablate.core.seeds import spread_lines, verdict_line
from ablate.core.status import Job, Row, _float, read_csv
from ablate.mask import stale, study

#: the config's resources group of each GPU-capable rule (rules/mask/*.smk: resources_of(...))
RESOURCE_GROUP = {
    "prepare_model": "prepare_model",
    "leakage_probe": "leakage",
    "finetune": "finetune",
    "eval_model": "eval",
}


def _num(x: Any, fmt: str = ".4g") -> str:
    return "" if x is None else format(x, fmt)


def headline(rule: str, record: dict) -> str:
    if rule in ("prepare_model", "finetune") and "steps_done" in record:
        stop = (record.get("stop") or {}).get("reason", "")
        return (
            f"{record['steps_done']}/{record.get('max_steps')} steps ({stop}), "
            f"eval loss {_num(record.get('final_eval_loss'))}"
        )
    if rule == "leakage_probe":
        return f"leaks: {record.get('leaks')}, loss ratio {_num(record.get('ratio'), '.3g')}"
    if rule == "eval_model":
        macro = record.get("macro") or {}
        return (
            f"macro {_num(macro.get('score'), '.3f')} (chance {_num(macro.get('chance'), '.3f')})"
        )
    return ""


def _upstream(j: study.Job, names: dict[str, list[str]]) -> list[str]:
    """The jobs whose outputs a job reads (rules/mask/*.smk), by name."""
    if j.rule == "leakage_probe":
        return ["make_data", "prepare_model"]
    if j.rule == "finetune":
        return ["make_data", "prepare_model", f"leakage/{j.policy}"]
    if j.rule == "eval_model":
        return ["make_data", j.upstream or "prepare_model"]
    if j.rule in ("recovery_table", "plot_scores", "mask_claims"):
        return names["eval_model"]
    if j.rule == "plot_loss_curves":
        return names["finetune"]
    return []


def status_jobs(config: dict[str, Any]) -> list[Job]:
    variants = study.variants_of(config)
    jobs = study.jobs(config, variants)
    names: dict[str, list[str]] = {}
    for j in jobs:
        names.setdefault(j.rule, []).append(j.name)
    out = []
    for j in jobs:
        record = j.record or j.outputs.get("card")
        group = RESOURCE_GROUP.get(j.rule)
        out.append(
            Job(
                study="mask",
                name=j.name,
                stage="" if j.stage is None else str(j.stage),
                outputs=list(j.outputs.values()),
                record=record,
                changes=(
                    lambda old, j=j: stale.job_changes(j.rule, j.wildcards, old, config, variants)
                ),
                benchmark=j.benchmark,
                log=j.log,
                gpus=int(config["resources"][group].get("gpu", 0)) if group else 0,
                upstream=_upstream(j, names),
                headline=lambda rec, rule=j.rule: headline(rule, rec),
            )
        )
    return out


def key_results(config: dict[str, Any], workdir: Path) -> list[str]:
    """The macro rows of the recovery table and the verdict of each study-level claim."""
    results = workdir / config["results"]
    lines = []
    recovery = [
        r for r in read_csv(results / study.PATTERNS["recovery_csv"]) if r["task"] == "macro"
    ]
    for r in recovery:
        rec = _float(r.get("recovered_fraction"))
        lines.append(
            f"- stage {r['stage']} {r['variant']} under {r['eval_policy']}: macro "
            f"{float(r['score']):.3f}"
            + (f", recovered fraction {rec:.2f}" if rec is not None else "")
        )
    lines += spread_lines(recovery, ("base_variant", "eval_policy"), "score", "macro")
    claims = read_csv(results / study.PATTERNS["claims_csv"])
    lines += [verdict_line(c) for c in claims if "/" not in c["claim"]]
    return lines


def forecast(config: dict[str, Any], workdir: Path, rows: list[Row]) -> list[str]:
    """Per GPU setup of the planner, the estimated hours and cost of the jobs not done; without
    a plan, the requested runtimes (an upper bound)."""
    left = {r.job.name for r in rows if r.status != "done"}
    if not left:
        return []
    results = workdir / config["results"]
    plan = read_csv(results / PLAN_FILES["plan_csv"]) or read_csv(
        results / PLAN_FILES["estimate_csv"]
    )
    planned = [p for p in plan if p["job"] in left]
    if not planned:
        by_name = {j.name: j for j in study.jobs(config)}
        minutes = sum(
            config["resources"][RESOURCE_GROUP[by_name[n].rule]]["runtime"]
            for n in left
            if by_name[n].rule in RESOURCE_GROUP
        )
        return [
            f"- mask: {len(left)} jobs left; no plan yet (`snakemake {results}/plan.csv`); "
            f"at most {minutes / 60:.3g} h by the requested runtimes"
        ]
    lines = []
    for setup in dict.fromkeys(p["setup"] for p in planned):
        mine = [p for p in planned if p["setup"] == setup]
        est = sum(_float(p["est_s"]) or 0.0 for p in mine)
        cost = [_float(p["est_cost_usd"]) for p in mine]
        usd = f", ${sum(c for c in cost if c):.2f}" if any(cost) else ""
        lines.append(f"- mask on {setup}: {len(mine)} jobs, {est / 3600:.3g} h{usd}")
    return lines
