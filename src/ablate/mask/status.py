"""The mask study's side of STATUS.md (ablate.core.reports.status; the status part of the study
protocol, ablate.core.jobs): the headline numbers of each record, why a finished job is stale
(the slice its record holds against its job's ``config``), the key results (recovery and claims
tables) and the forecast of what remains (the planner's plan.csv). No torch: `ablate status`
must stay cheap."""

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

#: the study-level claims that must hold on every CPU kind (ablate.core.reports.expected: an
#: unmeasured CPU kind's run must support them, and ``ablate expected`` fails loudly where one of
#: them flips against its kind's row; docs/embedded.md, "Measured runs"): the study's question,
#: ``prefix_recovers`` (3B wins back part of the drop), and the claims that held on every CPU kind
#: and tree measured; ``long_at_least_prefix`` (5B >= 3B under the ablation) is left out: 5B and
#: 3B are within noise of each other, and it was inconclusive on an AMD EPYC without AVX-512 at
#: tree 05bae26 (p = 0.065) while supported elsewhere
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
#: the sections of the pages that ``ablate expected --write`` renders from the row of the CPU kind
#: whose run drew the picture (ablate.core.reports.expected): (page, marker name, function of the
#: row's quantities of this study and the row's label)
FRONT_SECTIONS = (
    (Path("README.md"), "caption", front.caption),
    (Path("docs/embedded.md"), "shows", front.shows),
)
#: the picture ``ablate expected --write`` copies from the run into the checkout: (its path under
#: the results folder, its path in the checkout); the README shows it
FRONT_PICTURE = (layout.PATTERNS["plot_scores"], Path("docs/img/scores.png"))
#: its run_scores' macro scores are ``<model> under <eval policy>``: the README's table of
#: expected results is a line per model and a column per policy (ablate.core.reports.expected)
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
    """The config keys changed since the job's record was written: its recorded slice against
    the job's ``config``, each key named where the config sets it (``labels["where"]``); a
    finetune's param its variant takes from elsewhere is named on the variant, then where it
    is set now."""
    where = job.labels["where"]
    return config_changes(_recorded_slice(job, old), job.config, where, _inherited(job, where))


def _inherited(job: Job, where: Any) -> dict[str, str]:
    """A finetune's params that its variant does not set (the defaults' or the variant's it
    extends): slice key -> that param's path on the variant (params are keys of the variant)."""
    if job.rule != "finetune":
        return {}
    at = where[""]
    return {
        key: f"{at}.{key.removeprefix('params.')}"
        for key, path in where.items()
        if key.startswith("params.") and not path.startswith(f"{at}.")
    }


def older_records(jobs: list[Job]) -> list[Job]:
    """The jobs whose record (under the working directory) an earlier version wrote (its slice
    with the job's wildcards)."""
    out = []
    for job in jobs:
        if job.record and job.rule in ("eval_model", "leakage_probe"):
            old = recorded_config(Path(job.record))
            if old is not None and _recorded_slice(job, old) is not old:
                out.append(job)
    return out


def _recorded_slice(job: Job, old: Any) -> Any:
    """The slice of a record written before each job recorded its slice alone: an evaluation
    recorded ``{"eval": slice, "model", "policy"}``, a leakage probe ``{**slice, "policy"}`` (the
    wildcards, which its outputs' paths already hold); read as the slice, so an older results
    folder shows current, not stale."""
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
    """``ablate runs``' cells: the macro score of each stage, variant and eval policy (the
    recovery table of the results folder ``results``)."""
    return [
        f"{_of_model(r)}{r['variant']} under {r['eval_policy']} {float(r['score']):.3f}"
        for r in read_csv(results / layout.PATTERNS["recovery_csv"])
        if r["task"] == "macro"
    ]


def run_scores(results: Path) -> dict[str, float]:
    """``ablate runs``' scores to compare trees by: each row of the recovery table of the results
    folder ``results``, its macro as ``<variant> under <policy>`` and each task's as ``<variant>
    under <policy>: <task>`` (a multi-model table's rows named by their model first)."""
    out = {}
    for r in read_csv(results / layout.PATTERNS["recovery_csv"]):
        if (score := number(r.get("score"))) is not None:
            out[score_name(r)] = score
    return out


def score_name(row: Mapping[str, Any]) -> str:
    """A recovery row's score as :func:`run_scores` names it (and the score plot's metadata,
    ablate.mask.report): ``<variant> under <policy>``, a task's with ``: <task>`` after it."""
    name = f"{_of_model(row)}{row['variant']} under {row['eval_policy']}"
    return name if row["task"] == "macro" else f"{name}: {row['task']}"


def score_samples(
    results: Path, names: Iterable[str], shared: Path | None = None
) -> dict[str, Any]:
    """``ablate runs``' per-item values of each score of ``names`` (as :func:`run_scores` names
    them): the correctness of the evaluation its recovery row came from (the row's ``run_id``,
    its metrics.json and samples.parquet; a task's score its task's items), found in ``results``
    or, an evaluation an experiment shares with its base, in ``shared``. A score whose evaluation
    holds no samples of that run is left out."""
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
    """The rows of the claims table of the results folder ``results``."""
    return read_csv(results / layout.PATTERNS["claims_csv"])


def forecast(config: dict[str, Any], workdir: Path, rows: list[Row]) -> list[str]:
    """The planner's forecast of the jobs not done, else their requested runtimes."""

    def runtime_min(job: Job) -> float:
        group = layout.RESOURCE_GROUP.get(job.rule)
        return config["mask"]["resources"][group]["runtime"] if group else 0.0

    return planned_forecast("mask", config, workdir, rows, runtime_min)
