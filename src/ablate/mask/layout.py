"""The mask study's layout (its study part ``layout``, :mod:`ablate.core.jobs`): files and jobs,
derived from a config: :func:`jobs` is the one job list.

Pure Python (no torch): the Snakefile imports it at parse time, and a no-op rerun must stay fast."""

from __future__ import annotations

from typing import Any

from ablate.core.config import schema_defaults, sorted_tree
from ablate.core.jobs import Job, benchmark_pattern, log_pattern, make_job
from ablate.mask import models as model_dim
from ablate.mask.variants import (
    CLAIM_ROLES,
    claims_evaluations,
    finetune_where,
    resolve_claims,
    variants_of,
)

# the study's hook (ablate.core.trees.experiments.changes): a variant's key the config leaves unset
from ablate.mask.variants import resolved_value as resolved_value

#: Each rule's log (and benchmark) file stem in its rule's folder, its wildcards in braces.
_FILE_STEMS = {
    "make_data": "data",
    "prepare_model": "base",  # the registration of a pretrained model too
    "leakage_probe": "{policy}",
    "finetune": "{variant}",
    "eval_model": "{model}.{policy}",
    "recovery_table": "recovery",
    "plot_scores": "scores",
    "plot_loss_curves": "loss_curves",
    "mask_claims": "mask",
    # a multi-model config's cross-model table and claims (ablate.mask.models)
    "models_recovery": "recovery",
    "models_claims": "mask",
}


def _log(rule: str) -> str:
    return log_pattern(rule, _FILE_STEMS[rule])


def _benchmark(rule: str) -> str:
    return benchmark_pattern(rule, _FILE_STEMS[rule])


#: Every file the mask study's rules write, relative to the results folder (config `results`).
PATTERNS: dict[str, str] = {
    # make_data (mask.data.source: embedded)
    "corpus": "data/corpus.jsonl",
    "tasks": "data/tasks",
    "sft": "data/sft.jsonl",
    "make_data_log": _log("make_data"),
    # prepare_model: the embedded model's pretraining, or a pretrained model's card
    "tokenizer": "model/tokenizer",
    "base_model": "model/base/final",
    "base_summary": "model/base/summary.json",
    "model_card": "model/base.json",
    "prepare_model_log": _log("prepare_model"),
    "prepare_model_benchmark": _benchmark("prepare_model"),
    # leakage_probe, one per training policy
    "leakage": "leakage/{policy}.json",
    "leakage_verdict": "leakage/{policy}.verdict.json",  # the finetunes' input (leakage.verdict)
    "leakage_log": _log("leakage_probe"),
    "leakage_benchmark": _benchmark("leakage_probe"),
    # finetune, one per variant
    "finetune_model": "finetune/{variant}/final",
    "finetune_summary": "finetune/{variant}/summary.json",
    "finetune_log": _log("finetune"),
    "finetune_benchmark": _benchmark("finetune"),
    # eval_model, one per (model, policy)
    "eval_metrics": "eval/{model}/{policy}/metrics.json",
    "eval_samples": "eval/{model}/{policy}/samples.parquet",
    "eval_log": _log("eval_model"),
    "eval_benchmark": _benchmark("eval_model"),
    # recovery_table and the report's plots
    "recovery_csv": "recovery.csv",
    "recovery_parquet": "recovery.parquet",
    "recovery_tex": "recovery.tex",  # its macro rows, for a paper (booktabs)
    "recovery_log": _log("recovery_table"),
    "plot_scores": "plots/scores.png",
    "plot_scores_log": _log("plot_scores"),
    "plot_loss_curves": "plots/loss_curves.png",
    "plot_loss_curves_log": _log("plot_loss_curves"),
    # mask_claims: the claims table (config claims:)
    "claims_csv": "claims/mask.csv",
    "claims_md": "claims/mask.md",
    "claims_html": "claims/mask.html",  # the report's view of the table
    "claims_tex": "claims/mask.tex",  # for a paper (booktabs)
    "claims_log": _log("mask_claims"),
    # a multi-model config: each model's files above under MODEL_DIR, the cross-model ones' logs
    "models_recovery_log": _log("models_recovery"),
    "models_claims_log": _log("models_claims"),
}
BASE = "base"  # the evaluated model name of the base model (the others are variants)
#: The keys of ``mask:`` read by the jobs without a config slice alone (the recovery table, its
#: plots, the claims): an experiment that changes one runs those (ablate.core.trees.experiments).
TABLE_KEYS = ("claims",)
#: the folders of a results tree that hold its models' studies (ablate.core.trees.results_trees)
PART_FOLDERS = (model_dim.MODEL_DIR.split("/")[0],)
#: The rule's output names and the PATTERNS keys they come from (a rule's `output:` names).
_RULE_OUTPUTS: dict[str, dict[str, str]] = {
    "make_data": {"corpus": "corpus", "tasks": "tasks", "sft": "sft"},
    "prepare_model": {
        "tokenizer": "tokenizer",
        "model": "base_model",
        "summary": "base_summary",
        "card": "model_card",
    },
    "register_model": {"card": "model_card"},  # prepare_model of a pretrained model
    "leakage_probe": {"probe": "leakage", "verdict": "leakage_verdict"},
    "finetune": {"model": "finetune_model", "summary": "finetune_summary"},
    "eval_model": {"metrics": "eval_metrics", "samples": "eval_samples"},
    "recovery_table": {"csv": "recovery_csv", "parquet": "recovery_parquet", "tex": "recovery_tex"},
    "plot_scores": {"png": "plot_scores"},
    "plot_loss_curves": {"png": "plot_loss_curves"},
    "mask_claims": {
        "csv": "claims_csv",
        "md": "claims_md",
        "html": "claims_html",
        "tex": "claims_tex",
    },
}
_RULE_OUTPUTS["models_recovery"] = _RULE_OUTPUTS["recovery_table"]
_RULE_OUTPUTS["models_claims"] = _RULE_OUTPUTS["mask_claims"]


#: the config's resources group (``mask.resources``) of each GPU-capable rule
RESOURCE_GROUP = {
    "prepare_model": "prepare_model",
    "leakage_probe": "leakage",
    "finetune": "finetune",
    "eval_model": "eval",
}


def path(config: dict[str, Any], key: str, **wildcards: str) -> str:
    """A file of PATTERNS under this configuration's results folder, wildcards filled."""
    return f"{config['results']}/{PATTERNS[key]}".format(**wildcards)


def models(variants: dict[str, Any]) -> list[str]:
    """The evaluated models: the base model, then every finetune variant."""
    return [BASE, *sorted(variants)]


def _eval_stage(model: str, policy: str, variants: dict[str, Any]) -> int:
    """base x causal = 1, base x ablated = 2, a stage-3 finetune's = 4, a stage-5 one's 5."""
    if model == BASE:
        return 1 if policy == "causal" else 2
    return {3: 4, 5: 5}[int(variants[model]["stage"])]


#: The rules whose config slice (``Job.config``) is one node of ``mask``: that node's path.
SLICE_NODES = {
    "make_data": "data",
    "prepare_model": "model",
    "leakage_probe": "leakage",
    "eval_model": "eval",
}


def finetune_slice(name: str, variant: dict[str, Any]) -> dict[str, Any]:
    """A finetune's config slice: the resolved variant (params: defaults + overrides)."""
    keep = ("stage", "policy", "allow_leakage", "params")
    return sorted_tree(dict(variant=name, **{k: variant[k] for k in keep}))


def _job(
    cfg: dict[str, Any], rule: str, name: str | None = None, *, files: str | None = None, **kw: Any
) -> Job:
    """A core Job of this study; its config slice ``config`` or a node of :data:`SLICE_NODES`."""
    wc = kw.pop("wildcards", {})
    outputs = {n: PATTERNS[key].format(**wc) for n, key in _RULE_OUTPUTS[files or rule].items()}
    labels = {k: kw.pop(k, None) for k in ("model", "policy", "variant")}
    if rule in SLICE_NODES and "config" not in kw:
        kw["config"] = sorted_tree(cfg["mask"][SLICE_NODES[rule]])
        labels["where"] = f"mask.{SLICE_NODES[rule]}"
    else:
        labels["where"] = kw.pop("where", "")
    resources = cfg["mask"].get("resources") or {}
    return make_job(
        cfg["results"],
        "mask",
        rule,
        name or rule,
        outputs,
        folder=rule,
        stem=_FILE_STEMS[rule].format(**wc),
        wildcards=wc,
        resources=resources.get(RESOURCE_GROUP.get(rule)),
        labels=labels,
        **kw,
    )


def _setup_jobs(config: dict[str, Any]) -> list[Job]:
    """The data (embedded) and the base model: pretrained here (embedded) or registered."""
    out = []
    if config["mask"]["data"]["source"] == "embedded":
        out.append(_job(config, "make_data"))
    base = dict(stage=0, model=BASE)
    if config["mask"]["model"]["source"] == "embedded":
        base.update(kind="train", record="summary")
        base.update(policy="causal", upstream=["make_data"])  # corpus
    else:  # recorded (or downloaded) on the submit host: not GPU work, not planned
        base.update(record="card", files="register_model")
    out.append(_job(config, "prepare_model", **base))
    return out


def _train_jobs(config: dict[str, Any], variants: dict[str, Any]) -> list[Job]:
    """The leakage probe of each training policy, then each variant's finetune."""
    setup = ["make_data", "prepare_model"]
    out = [
        _job(
            config,
            "leakage_probe",
            f"leakage/{p}",
            record="probe",
            wildcards={"policy": p},
            kind="probe",
            upstream=setup,
            model=BASE,
            policy=p,
        )
        for p in sorted({v["policy"] for v in variants.values()})
    ]
    out += [
        _job(
            config,
            "finetune",
            f"finetune/{n}",
            record="summary",
            wildcards={"variant": n},
            stage=int(v["stage"]),
            kind="train",
            upstream=[*setup, f"leakage/{v['policy']}"],
            model=n,
            policy=v["policy"],
            variant=v,
            config=finetune_slice(n, v),
            where=finetune_where(config, n, v),
        )
        for n, v in sorted(variants.items())
    ]
    return out


#: ``mask.eval`` keys added after evaluations were recorded: in the evaluations' slice only when
#: set off their default, so a study without them keeps the slice (and the records) it had.
LATE_EVAL_KEYS = ("task_dirs", "softmax_dtype")


def eval_slice(config: dict[str, Any]) -> tuple[dict[str, Any], str | dict[str, str]]:
    """The evaluations' config slice and where the config sets its keys: ``mask.eval``, with the
    hub tasks' datasets pinned by the hub revisions' lock, so a new pin reruns the evaluations
    and never restores the old result."""
    late = schema_defaults("properties/mask/properties/eval")
    node = {
        k: v for k, v in config["mask"]["eval"].items() if k not in LATE_EVAL_KEYS or v != late[k]
    }
    if config["mask"]["data"]["source"] == "embedded":
        return sorted_tree(node), "mask.eval"
    from ablate.core.outputs.hub_revisions import lock_path
    from ablate.mask.tasks import pinned_datasets

    pins = pinned_datasets([t["name"] for t in node["tasks"]], config["results"])
    if not pins:
        return sorted_tree(node), "mask.eval"
    lock = lock_path(config["results"])
    where = {"": "mask.eval"}
    for task, ds in pins.items():
        where[f"datasets.{task}"] = f"lm-eval's task {task}"
        where[f"datasets.{task}.revision"] = f"{lock} ({ds['path']})"
    return sorted_tree({**node, "datasets": pins}), where


def _eval_jobs(config: dict[str, Any], variants: dict[str, Any]) -> list[Job]:
    """Every evaluated model under causal and the ablated policy."""
    out = []
    eval_config, where = eval_slice(config)
    for model in models(variants):
        loads = None if model == BASE else f"finetune/{model}"
        for policy in dict.fromkeys(["causal", config["mask"]["eval"]["ablated_policy"]]):
            out.append(
                _job(
                    config,
                    "eval_model",
                    f"eval/{model}/{policy}",
                    record="metrics",
                    wildcards={"model": model, "policy": policy},
                    stage=_eval_stage(model, policy, variants),
                    kind="eval",
                    loads=loads,
                    upstream=["make_data", loads or "prepare_model"],
                    model=model,
                    policy=policy,
                    variant=variants.get(model),
                    config=eval_config,
                    where=where,
                )
            )
    return out


def _claims_upstream(
    config: dict[str, Any], variants: dict[str, Any], evals: list[Job]
) -> list[str]:
    """The evaluations the claims read: STATUS calls the claims stale for those alone."""
    claimed = claims_evaluations(
        resolve_claims(config["mask"]["claims"], variants), config["mask"]["eval"]["ablated_policy"]
    )
    return [j.name for j in evals if (j.labels["model"], j.labels["policy"]) in claimed]


def _table_jobs(
    config: dict[str, Any], evals: list[str], finetunes: list[str], claimed: list[str]
) -> list[Job]:
    """The recovery table, plots and claims, each upstream of what its rule reads."""
    pretrain = ["prepare_model"] if config["mask"]["model"]["source"] == "embedded" else []
    return [
        # the recovery table reads the finetunes' summaries too: their steps and stop
        _job(config, "recovery_table", upstream=evals + finetunes),
        _job(config, "plot_scores", upstream=["recovery_table"]),
        _job(config, "plot_loss_curves", upstream=pretrain + finetunes),
        _job(config, "mask_claims", upstream=claimed),
    ]


def jobs(config: dict[str, Any], variants: dict[str, Any] | None = None) -> list[Job]:
    """Every job of the mask study for a schema-validated config, in run order."""
    variants = variants_of(config) if variants is None else variants
    lms = model_dim.names(config)
    if not lms:
        return _model_jobs(config, variants)
    data = [j for j in _setup_jobs(config) if j.rule == "make_data"]
    shared = [j.name for j in data]
    per_model = [
        model_dim.in_model(j, lm, config["results"], shared)
        for lm in lms
        for j in _model_jobs(model_dim.model_config(config, lm), variants)
        if j.name not in shared
    ]
    return data + per_model + _cross_model_jobs(config, per_model)


def _model_jobs(config: dict[str, Any], variants: dict[str, Any]) -> list[Job]:
    """One model's study (``mask.model``)."""
    trains = _train_jobs(config, variants)
    evals = _eval_jobs(config, variants)
    finetunes = [j.name for j in trains if j.rule == "finetune"]
    claimed = _claims_upstream(config, variants, evals)
    tables = _table_jobs(config, [j.name for j in evals], finetunes, claimed)
    return _setup_jobs(config) + trains + evals + tables


def _cross_model_jobs(config: dict[str, Any], per_model: list[Job]) -> list[Job]:
    """The cross-model recovery table and claims, from each model's table and claims."""
    up = {r: [j.name for j in per_model if j.rule == r] for r in ("recovery_table", "mask_claims")}
    return [
        _job(config, "models_recovery", upstream=up["recovery_table"]),
        _job(config, "models_claims", upstream=up["mask_claims"]),
    ]


def targets(config: dict[str, Any]) -> list[str]:
    """The files a full run of the mask study ends with."""
    tables = ("recovery_csv", "recovery_parquet", "claims_csv")
    plots = ("plot_scores", "plot_loss_curves")
    lms = model_dim.names(config)
    if not lms:
        return [path(config, k) for k in (*tables[:2], *plots, tables[2])]
    return [path(config, k) for k in tables] + [
        model_path(config, lm, k) for lm in lms for k in plots
    ]


def model_path(config: dict[str, Any], lm: str, key: str, **wildcards: str) -> str:
    """A file of one model's study (a multi-model config), wildcards filled."""
    return f"{model_dim.folder(config['results'], lm)}/{PATTERNS[key]}".format(**wildcards)


def recovery_labels(job_list: list[Job]) -> dict[str, dict[str, Any]]:
    """metrics.json path -> how the recovery table labels its rows."""
    out = {}
    for j in job_list:
        if j.rule == "eval_model":
            v = j.labels["variant"] or {}
            out[j.outputs["metrics"]] = dict(
                stage=j.stage,
                variant=j.labels["model"],
                train_policy=v["policy"] if v else None,
                **{k: v[k] for k in ("base", "seed") if k in v},
            )
    return out


def plan_config(config: dict[str, Any]) -> dict[str, Any]:
    """The study's section with, of its claims, the roles alone (a margin leaves the plan as is)."""
    roles = {r: config["mask"]["claims"].get(r) for r in CLAIM_ROLES}
    return {**{k: v for k, v in config["mask"].items() if k != "claims"}, "claims": roles}
