"""The bridge study's side of STATUS.md (ablate.core.status): one row per job of
:func:`ablate.bridge.grid.jobs` (with the grid entries it serves), the numbers of each record, the
per-entry summary as key results and the forecast of what remains. No torch, no pandas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.bridge import grid
from ablate.core.provenance import changed_keys
from ablate.core.seeds import spread_lines, verdict_line
from ablate.core.status import Job, Row, _float, read_csv

LOG_RULE = {"bridge_register": "model"}  # its log sits beside the embedded model's


def _name(job: dict[str, Any]) -> str:
    return "/".join([job["rule"].removeprefix("bridge_"), *job["wildcards"].values()])


def _where(job: dict[str, Any], study: grid.Study) -> str:
    """The config key a change of this job's slice comes from."""
    if job["rule"] == "bridge_data":
        return "bridge.data"
    if job["rule"] in ("bridge_model", "bridge_register"):
        return f"bridge.{job['wildcards']['role']}"
    if "states_id" in job["wildcards"]:  # a frozen-state cache: its key comes from the entries
        return f"bridge.grid.{job['entries'][0]}"
    entry = next(e for e in study.entries.values() if e.run_id == job["wildcards"]["run_id"])
    return f"bridge.grid.{entry.name}"


def _changes(old: Any, job: dict[str, Any], where: str) -> list[str]:
    new = job["config"]
    if job["rule"] in ("bridge_model", "bridge_register") and isinstance(old, dict):
        old, new = old.get("model"), new["model"]  # the identity follows from the model keys
    return changed_keys(old, new, where)


def headline(rule: str, record: dict) -> str:
    if rule == "bridge_train":
        return (
            f"peak {record.get('peak', float('nan')):.3f} @ {record.get('peak_step')}, "
            f"final {record.get('final', float('nan')):.3f}, {record.get('steps_done')} steps"
        )
    if rule == "bridge_model" and "final_eval_loss" in record:
        return f"eval loss {record['final_eval_loss']:.4g}, {record.get('steps_done')} steps"
    return ""


def status_jobs(config: dict[str, Any]) -> list[Job]:
    study = grid.resolve(config["bridge"])
    jobs = grid.jobs(config, study)
    res = config["bridge"]["resources"]
    results = config["results"]
    names = [_name(j) for j in jobs]
    out = []
    for j, name in zip(jobs, names):
        group = grid.RESOURCE_GROUP.get(j["rule"])
        where = _where(j, study)
        if j["rule"] == "bridge_train":
            upstream = [n for n in names if n.startswith(("data", "model/", "register/"))]
        elif j["rule"] == "bridge_infer":
            upstream = [f"train/{j['wildcards']['run_id']}"]
        elif j["rule"] == "bridge_model":
            upstream = ["data"]
        else:
            upstream = []
        out.append(
            Job(
                study="bridge",
                name=name,
                stage=" ".join(j["entries"]),
                outputs=[f"{results}/{o}" for o in j["outputs"]],
                record=f"{results}/{j['record']}",
                changes=lambda old, j=j, w=where: _changes(old, j, w),
                benchmark=f"{results}/{j['benchmark']}" if j["benchmark"] else None,
                log=f"{results}/"
                + grid.PATTERNS["log"].format(
                    rule=LOG_RULE.get(j["rule"], j["rule"].removeprefix("bridge_")),
                    name=name.split("/")[-1],
                ),
                gpus=int(res[group].get("gpu", 0)) if group else 0,
                upstream=upstream,
                headline=lambda rec, rule=j["rule"]: headline(rule, rec),
            )
        )
    tables = ("summary", "curves", "claims", "claims_md", "claims_html")
    tables += ("plot_curves", "plot_k", "plot_baselines")
    out.append(
        Job(
            study="bridge",
            name="tables",
            stage="all",
            outputs=[f"{results}/{grid.PATTERNS[k]}" for k in tables],
            upstream=[n for n in names if n.startswith(("train/", "infer/"))],
        )
    )
    return out


def key_results(config: dict[str, Any], workdir: Path) -> list[str]:
    """Per grid entry its K, peak and final accuracy (summary.csv), and each claim's verdict."""
    results = workdir / config["results"]
    lines = [
        f"- {r['entry']} (K {r['K']}{', reuses ' + r['reuses'] if r['reuses'] else ''}): "
        f"peak {float(r['peak']):.3f}, final {float(r['final']):.3f}"
        for r in read_csv(results / grid.PATTERNS["summary"])
    ]
    lines += spread_lines(
        read_csv(results / grid.PATTERNS["summary"]), ("base_entry",), "final", "final"
    )
    claims = read_csv(results / grid.PATTERNS["claims"])
    return lines + [verdict_line(c) for c in claims]


def forecast(config: dict[str, Any], workdir: Path, rows: list[Row]) -> list[str]:
    """Hours of the jobs not done: the bridge plan's forecast (plan.csv) where it has one, else
    the requested runtime (bridge.resources, an upper bound)."""
    left = [r for r in rows if r.status != "done" and r.job.name.split("/")[0] != "register"]
    if not left:
        return []
    plan = {
        "/".join(
            [
                p["job"].removeprefix("bridge_"),
                *(w.split("=", 1)[1] for w in p["wildcards"].split(",") if w),
            ]
        ): _float(p["forecast_h"])
        for p in read_csv(workdir / config["results"] / grid.PATTERNS["plan"])
    }
    res = config["bridge"]["resources"]
    hours = gpu_h = 0.0
    for r in left:
        rule = "bridge_" + r.job.name.split("/")[0]
        h = plan.get(r.job.name)
        if h is None and rule in grid.RESOURCE_GROUP:
            h = res[grid.RESOURCE_GROUP[rule]]["runtime"] / 60
        hours += h or 0.0
        gpu_h += (h or 0.0) * r.job.gpus
    return [f"- bridge: {len(left)} jobs left, about {hours:.3g} h ({gpu_h:.3g} GPU h)"]
