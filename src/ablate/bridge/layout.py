"""The bridge study's layout (its study part ``layout``): its file patterns and its one
list of jobs (:func:`jobs`, from the grid :func:`ablate.bridge.grid.resolve` resolves), which
serves the rules, STATUS, the tables and the execution plan.

Pure Python (no torch): the Snakefile imports it, and a no-op rerun must stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.bridge.caches import FROZEN_SPLITS, states_params
from ablate.bridge.grid import (
    Study,
    datasets_used,
    infer_identity,
    infer_params,
    processes,
    resolve,
)
from ablate.bridge.pins import ROLES, model_identity
from ablate.bridge.world import DATASET_KIND  # dataset name -> file stem and scorer kind
from ablate.core.config import sorted_tree
from ablate.core.jobs import Job, benchmark_pattern, log_pattern, make_job

#: The resources group (``bridge.resources``) each rule's jobs request; rules not named run local.
RESOURCE_GROUP = {
    "bridge_model": "prepare_model",
    "bridge_source_states": "frozen_states",
    "bridge_teacher_states": "frozen_states",
    "bridge_train": "train",
    "bridge_infer": "infer",
}


#: Every file of the bridge study, relative to the results folder (rules use out(PATTERNS[...])).
PATTERNS = {
    "world_dir": "bridge/data",
    "dataset": "bridge/data/{kind}_{split}.jsonl",
    "corpus": "bridge/data/corpus.jsonl",
    "data_provenance": "bridge/data/provenance.json",
    "model_dir": "bridge/models/{role}",
    "model_final": "bridge/models/{role}/final",
    "model_summary": "bridge/models/{role}/summary.json",
    "card": "bridge/models/{role}/card.json",
    # a cache = its split folders (FROZEN_SPLITS[what]) and, beside them, its record
    "states_split": "bridge/{what}_states/{states_id}/{split}",
    "states_summary": "bridge/{what}_states/{states_id}/summary.json",
    "run_dir": "bridge/runs/{run_id}",
    "translator": "bridge/runs/{run_id}/translator",
    "run_summary": "bridge/runs/{run_id}/summary.json",
    "run_samples": "bridge/runs/{run_id}/samples.parquet",
    "infer_samples": "bridge/infer/{run_id}/samples.parquet",
    "infer_summary": "bridge/infer/{run_id}/summary.csv",
    # written by ablate.bridge.infer.benchmark beside the aggregate table
    "infer_provenance": "bridge/infer/{run_id}/summary.csv.provenance.json",
    "summary": "bridge/summary.csv",
    "curves": "bridge/curves.csv",
    "claims": "bridge/claims.csv",
    "claims_md": "bridge/claims.md",
    "claims_html": "bridge/claims.html",  # the report's view of the table
    "claims_tex": "bridge/claims.tex",  # for a paper (booktabs)
    "plot_curves": "bridge/plots/accuracy_over_steps.png",
    "plot_k": "bridge/plots/accuracy_vs_k.png",
    "plot_baselines": "bridge/plots/baselines.png",
    # a job's log and benchmark (ablate.core.jobs.LOG): {folder} its rule's (_LOG_FOLDER)
    "log": log_pattern("bridge/{folder}", "{stem}"),
    "benchmark": benchmark_pattern("bridge/{folder}", "{stem}"),
}


def states_outputs(study: Study, states_id: str) -> list[str]:
    """A cache job's outputs: its split folders, then its record."""
    what = study.states[states_id]["what"]
    fill = dict(what=what, states_id=states_id)
    return [PATTERNS["states_split"].format(split=s, **fill) for s in FROZEN_SPLITS[what]] + [
        PATTERNS["states_summary"].format(**fill)
    ]


def dataset_file(kind: str, split: str) -> str:
    return PATTERNS["dataset"].format(kind=kind, split=split)


def data_files(study: Study) -> list[str]:
    """The data rule's jsonl outputs (embedded: the whole world; hub: the datasets the grid uses)."""
    if study.config["data"]["source"] == "embedded":
        kinds = sorted(set(DATASET_KIND.values()))
        return [dataset_file(k, s) for k in kinds for s in ("train", "test")] + [PATTERNS["corpus"]]
    kinds = sorted({DATASET_KIND[d] for d in datasets_used(study)})
    return [dataset_file(k, s) for k in kinds for s in ("train", "test")]


def _model_slice(study: Study, role: str) -> dict[str, Any]:
    """What the model rule of ``role`` records and reruns on."""
    out = dict(
        model=study.config[role],
        identity=model_identity(study.config[role], study.config["data"]),
    )
    if role in study.requested:
        out["requested_revision"] = study.requested[role]
    return sorted_tree(out)


def _states_config(study: Study, states_id: str) -> dict[str, Any]:
    """A cache job's config: what the cache depends on, not the params of the runs reading it (an
    lr edit keeps it); its record holds ``identity``."""
    st = study.states[states_id]
    e = study.runs[st["runs"][0]]  # a run reading it: they share its key
    return sorted_tree(
        dict(
            identity=dict(key=st["key"], test_items=st["test_items"], batch=st["batch"]),
            params=states_params(st),
            what=st["what"],
            role=st["role"],
            kind=e.kind,
            test_items=st["test_items"],
        )
    )


def _run_config(e: Any, **fields: Any) -> dict[str, Any]:
    """A training's or an inference benchmark's job config, with ``fields``."""
    return sorted_tree(
        dict(
            run_id=e.run_id,
            source_role=e.source_role,
            target_role=e.target_role,
            kind=e.kind,
            # a seed's key is its declared entry's: a seed equal to the default's reuses its run
            where=f"bridge.grid.{e.base or e.name}",
            **fields,
        )
    )


#: The rules whose job config (their params) holds the slice their record holds as ``identity``.
IDENTITY_IN_CONFIG = (
    "bridge_source_states",
    "bridge_teacher_states",
    "bridge_train",
    "bridge_infer",
)


#: The planner's kind of each planned rule's jobs; the other rules run local and are not planned.
_KIND = {
    "bridge_model": "train",
    "bridge_source_states": "eval",
    "bridge_teacher_states": "eval",
    "bridge_train": "train",
    "bridge_infer": "generate",
}

#: the logs folder of rules named otherwise (a registration's beside the embedded model's)
_LOG_FOLDER = {
    "bridge_register": "model",
    **{f"bridge_{r}": "tables" for r in ("summary", "claims", "plots")},
}


def _job(cfg: dict[str, Any], rule: str, name: str, outputs: dict[str, str], **kw: Any) -> Job:
    """A core Job of this study, its log and (a planned rule's) benchmark named ``stem``."""
    group = RESOURCE_GROUP.get(rule)
    return make_job(
        cfg["results"],
        "bridge",
        rule,
        name,
        outputs,
        folder="bridge/" + _LOG_FOLDER.get(rule, rule.removeprefix("bridge_")),
        kind=_KIND.get(rule),
        resources=cfg["bridge"]["resources"][group] if group else None,
        **kw,
    )


def _serving(study: Study, test) -> list[str]:
    return sorted(n for n, e in study.entries.items() if test(e))


def _setup_jobs(config: dict[str, Any], study: Study) -> list[Job]:
    """The data, and each role's model: pretrained here (embedded) or registered."""
    data = {Path(f).stem: f for f in data_files(study)} | {
        "provenance": PATTERNS["data_provenance"]
    }
    out = [
        _job(
            config,
            "bridge_data",
            "data",
            data,
            record="provenance",
            stem="data",
            wildcards={},
            config=sorted_tree(study.config["data"]),
            labels={"where": "bridge.data"},
            serves=sorted(study.entries),
        )
    ]
    for role in ROLES:
        embedded = study.config[role]["source"] == "embedded"
        files = {"card": PATTERNS["card"].format(role=role)}
        if embedded:
            files["summary"] = PATTERNS["model_summary"].format(role=role)
            files["model"] = PATTERNS["model_final"].format(role=role)
        rule, short = ("bridge_model", "model") if embedded else ("bridge_register", "register")
        out.append(
            _job(
                config,
                rule,
                f"{short}/{role}",
                files,
                stem=role,
                wildcards={"role": role},
                record="summary" if embedded else "card",
                config=_model_slice(study, role),
                labels={"where": f"bridge.{role}"},
                upstream=["data"] if embedded else [],
                serves=_serving(study, lambda e, r=role: r in (e.source_role, e.target_role)),
            )
        )
    return out


def _states_name(study: Study, states_id: str) -> str:
    """A frozen-state cache job's name: what it holds, its dataset and key hash."""
    dataset, _, key = states_id.rpartition("-")
    return f"{study.states[states_id]['what']}_states/{dataset}:{key}"


def _setup_names(setup: list[Job], roles: set[str]) -> list[str]:
    """The data job and the model jobs of ``roles``: what a job loading those models reads."""
    return [j.name for j in setup if j.wildcards.get("role", "") in roles | {""}]


def _states_jobs(config: dict[str, Any], study: Study, setup: list[Job]) -> list[Job]:
    out = []
    for sid, st in study.states.items():
        files = states_outputs(study, sid)
        outputs = {Path(f).name: f for f in files[:-1]} | {"summary": files[-1]}
        serves = _serving(study, lambda e, s=sid: s in (e.states_id, e.teacher_id))
        out.append(
            _job(
                config,
                f"bridge_{st['what']}_states",
                _states_name(study, sid),
                outputs,
                stem=sid,
                wildcards={"states_id": sid},
                record="summary",
                config=_states_config(study, sid),
                labels={"where": f"bridge.grid.{serves[0]}"},
                upstream=_setup_names(setup, {st["role"]}),
                serves=serves,
            )
        )
    return out


def _train_name(study: Study, run_id: str) -> str:
    """A training job's name: the grid entries it serves (``train/1a+2c``: 2c is same_as 1a)."""
    return "train/" + "+".join(_serving(study, lambda e: e.run_id == run_id))


def _run_jobs(config: dict[str, Any], study: Study, setup: list[Job]) -> list[Job]:
    """One training job per distinct run, one inference benchmark per bridge.infer entry."""
    out = []
    for run_id, e in study.runs.items():
        caches = [_states_name(study, s) for s in (e.states_id, e.teacher_id) if s]
        keys = {"summary": "run_summary", "samples": "run_samples", "translator": "translator"}
        out.append(
            _job(
                config,
                "bridge_train",
                _train_name(study, run_id),
                {k: PATTERNS[p].format(run_id=run_id) for k, p in keys.items()},
                stem=run_id,
                wildcards={"run_id": run_id},
                record="summary",
                config=_run_config(
                    e, identity=e.identity, params=e.params, processes=processes(study.config)
                ),
                labels={"where": f"bridge.grid.{e.name}"},
                upstream=_setup_names(setup, {e.source_role, e.target_role}) + caches,
                serves=_serving(study, lambda x, r=run_id: x.run_id == r),
            )
        )
    keys = {k: f"infer_{k}" for k in ("samples", "summary", "provenance")}
    for role, e in study.infer:
        run = study.runs[e.run_id]  # the entry that owns the benchmarked run
        out.append(
            _job(
                config,
                "bridge_infer",
                f"infer/{role}:{e.name}",
                {k: PATTERNS[p].format(run_id=e.run_id) for k, p in keys.items()},
                stem=e.run_id,
                wildcards={"run_id": e.run_id},
                record="provenance",
                config=_run_config(  # its identity: ablate.bridge.grid.infer_identity
                    run,
                    identity=infer_identity(study, run),
                    params=infer_params(study, run),
                    timed_samples=study.config["infer"]["timed_samples"],
                ),
                labels={"where": f"bridge.grid.{e.name}"},
                upstream=[
                    *_setup_names(setup, {e.source_role, e.target_role}),
                    _train_name(study, e.run_id),
                ],
                serves=[f"infer:{role}:{e.name}"],
            )
        )
    return out


def _table_jobs(config: dict[str, Any], trains: list[str], infers: list[str]) -> list[Job]:
    """The summary and curves, the claims, the plots (rules/bridge/tables.smk), from the runs."""

    def table(rule: str, name: str, keys: tuple[str, ...], upstream: list[str]) -> Job:
        outputs = {k: PATTERNS[k] for k in keys}
        return _job(
            config,
            rule,
            name,
            outputs,
            stem=name,
            wildcards={},
            serves=["all"],
            upstream=upstream,
        )

    return [
        table("bridge_summary", "summary", ("summary", "curves"), trains),
        table(
            "bridge_claims",
            "claims",
            ("claims", "claims_md", "claims_html", "claims_tex"),
            ["summary", *trains, *infers],
        ),
        table(
            "bridge_plots",
            "plots",
            ("plot_curves", "plot_k", "plot_baselines"),
            ["summary", *infers],
        ),
    ]


def jobs(config: dict[str, Any], study: Study | None = None) -> list[Job]:
    """Every job of the bridge study, in run order."""
    study = study or resolve(config["bridge"], config["results"])
    setup = _setup_jobs(config, study)
    runs = _run_jobs(config, study, setup)
    trains = [j.name for j in runs if j.rule == "bridge_train"]
    infers = [j.name for j in runs if j.rule == "bridge_infer"]
    states = _states_jobs(config, study, setup)
    return setup + states + runs + _table_jobs(config, trains, infers)


def targets(config: dict[str, Any]) -> list[str]:
    """The files a full run of the bridge study ends with."""
    study = resolve(config["bridge"], config["results"])
    keys = ("summary", "claims", "plot_curves", "plot_k", "plot_baselines")
    infer = [PATTERNS["infer_summary"].format(run_id=e.run_id) for _, e in study.infer]
    return [f"{config['results']}/{p}" for p in [*(PATTERNS[k] for k in keys), *infer]]


def plan_config(config: dict[str, Any]) -> dict[str, Any]:
    return config["bridge"]
