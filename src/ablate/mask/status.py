"""The mask study's side of STATUS.md (the status part of the study protocol, ablate.core.jobs):
headline numbers, why a finished job is stale, key results and the forecast. No torch: `ablate
status` must stay cheap."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ablate.core.jobs import Job
from ablate.core.outputs.records import config_changes, read_json, recorded_config
from ablate.core.planner.totals import number
from ablate.core.reports.seeds import spread_lines, verdict_line
from ablate.core.reports.status import Row, planned_forecast, read_csv
from ablate.mask import front, layout
from ablate.mask.answer import answer  # the status protocol's (ablate.core.execution.terminal)

#: the study-level claims that must hold on every CPU kind (ablate.core.reports.expected); why
#: ``long_at_least_prefix`` is not among them: docs/embedded.md, "Expected results"
EVERY_CPU = (
    "learned",
    "ablation_hurts",
    "ablation_hurts_broadly",
    "prefix_recovers",
    "prefix_recovers_more",
    "long_recovers_more",
    "prefix_side_effect_small",
    "long_side_effect_small",
)
#: (page, marker, renderer) of the sections ``ablate expected --write`` renders from the row of
#: the CPU kind whose run drew the picture
FRONT_SECTIONS = (
    (Path("README.md"), "caption", front.caption),
    (Path("docs/embedded.md"), "shows", front.shows),
)
#: the picture ``ablate expected --write`` copies into the checkout: (under results, in checkout)
FRONT_PICTURE = (layout.PATTERNS["plot_scores"], Path("docs/img/scores.png"))
#: the README's table of expected results is a line per model and a column per eval policy
SCORES_BY_POLICY = True


def _num(x: Any, fmt: str = ".4g") -> str:
    return "" if x is None else format(x, fmt)


def headline(job: Job, record: dict) -> str:
    rule = job.rule
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


def changes(job: Job, old: Any, config: dict[str, Any]) -> list[str]:
    """The config keys changed since the job's record was written, each where it is set."""
    where = job.labels["where"]
    return config_changes(_recorded_slice(job, old), job.config, where, _inherited(job, where))


def _inherited(job: Job, where: Any) -> dict[str, str]:
    """A finetune's params its variant does not set: slice key -> that param's path on it."""
    if job.rule != "finetune":
        return {}
    at = where[""]
    return {
        key: f"{at}.{key.removeprefix('params.')}"
        for key, path in where.items()
        if key.startswith("params.") and not path.startswith(f"{at}.")
    }


def older_records(jobs: list[Job]) -> list[Job]:
    """The jobs whose record an earlier version wrote (its slice with the job's wildcards)."""
    out = []
    for job in jobs:
        if job.record and job.rule in ("eval_model", "leakage_probe"):
            old = recorded_config(Path(job.record))
            if old is not None and _recorded_slice(job, old) is not old:
                out.append(job)
    return out


def _recorded_slice(job: Job, old: Any) -> Any:
    """The slice of a record written before each job recorded its slice alone, so an older
    results folder shows current, not stale."""
    if not isinstance(old, dict) or not set(job.wildcards) <= set(old):
        return old
    if job.rule == "eval_model" and "eval" in old:
        return old["eval"]
    if job.rule == "leakage_probe":
        return {k: v for k, v in old.items() if k != "policy"}
    return old


def key_results(config: dict[str, Any], workdir: Path) -> list[str]:
    """The macro rows of the recovery table and the verdict of each study-level claim."""
    results = workdir / config["results"]
    lines = []
    recovery = [
        r for r in read_csv(results / layout.PATTERNS["recovery_csv"]) if r["task"] == "macro"
    ]
    for r in recovery:
        rec = number(r.get("recovered_fraction"))
        lines.append(
            f"- {_of_model(r)}stage {r['stage']} {r['variant']} under {r['eval_policy']}: macro "
            f"{float(r['score']):.3f}"
            + (f", recovered fraction {rec:.2f}" if rec is not None else "")
        )
    group = ("base_variant", "eval_policy")
    multi = bool(recovery) and "model" in recovery[0]  # a multi-model config's table
    lines += spread_lines(recovery, ("model", *group) if multi else group, "score", "macro")
    claims = read_csv(results / layout.PATTERNS["claims_csv"])
    lines += [verdict_line(c) for c in claims if "/" not in c["claim"]]
    if said := answer(claims):
        lines.append(f"- answer: {said}")
    return lines


def _of_model(row: Mapping[str, Any]) -> str:
    """A recovery row's model as a line names it first (a multi-model config's table)."""
    return f"{row['model']}: " if isinstance(row.get("model"), str) and row["model"] else ""


def run_numbers(results: Path) -> list[str]:
    """``ablate runs``' cells: the macro score of each variant and eval policy."""
    return [
        f"{_of_model(r)}{r['variant']} under {r['eval_policy']} {float(r['score']):.3f}"
        for r in read_csv(results / layout.PATTERNS["recovery_csv"])
        if r["task"] == "macro"
    ]


def run_scores(results: Path) -> dict[str, float]:
    """``ablate runs``' scores to compare trees by: each recovery row's, by :func:`score_name`."""
    out = {}
    for r in read_csv(results / layout.PATTERNS["recovery_csv"]):
        if (score := number(r.get("score"))) is not None:
            out[score_name(r)] = score
    return out


def score_name(row: Mapping[str, Any]) -> str:
    """``[<model>: ]<variant> under <policy>[: <task>]``: ``ablate runs``' and the score plot's."""
    name = f"{_of_model(row)}{row['variant']} under {row['eval_policy']}"
    return name if row["task"] == "macro" else f"{name}: {row['task']}"


def score_samples(
    results: Path, names: Iterable[str], shared: Path | None = None
) -> dict[str, Any]:
    """``ablate runs``' per-item values of each score of ``names``, from ``results`` or ``shared``
    (an evaluation shared with an experiment's base); left out where its samples are missing."""
    from ablate.core.reports.claims import Samples
    from ablate.mask import items, models
    from ablate.mask.recovery import MACRO

    wanted, out, read = set(names), {}, {}
    for r in read_csv(results / layout.PATTERNS["recovery_csv"]):
        if (name := score_name(r)) not in wanted:
            continue
        where = Path(models.MODEL_DIR.format(lm=r["model"])) if _of_model(r) else Path()
        folder = where / layout.PATTERNS["eval_samples"].format(
            model=r["variant"], policy=r["eval_policy"]
        )
        for tree in filter(None, (results, shared)):
            metrics = read_json(tree / folder.parent / "metrics.json") or {}
            path = tree / folder
            if str(metrics.get("run_id")) != r.get("run_id") or not path.is_file():
                continue
            if path not in read:
                try:
                    read[path] = items.correctness(metrics, items.load(path), str(path))
                except (items.ItemsError, KeyError, OSError, ValueError):
                    read[path] = None  # unreadable: no interval, as without samples
            if read[path] is not None:
                task = read[path] if r["task"] == MACRO else read[path].loc[[r["task"]]]
                out[name] = Samples(task, str(path), name)
            break
    return out


def claims(results: Path) -> list[dict[str, str]]:
    """The rows of the claims table."""
    return read_csv(results / layout.PATTERNS["claims_csv"])


def forecast(config: dict[str, Any], workdir: Path, rows: list[Row]) -> list[str]:
    """The planner's forecast of the jobs not done, else their requested runtimes."""

    def runtime_min(job: Job) -> float:
        group = layout.RESOURCE_GROUP.get(job.rule)
        return config["mask"]["resources"][group]["runtime"] if group else 0.0

    return planned_forecast("mask", config, workdir, rows, runtime_min)
