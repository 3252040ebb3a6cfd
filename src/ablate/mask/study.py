"""The mask study's shape, derived from a config: policies, resolved variants, files, jobs.

:func:`jobs` is the one job list (core :class:`ablate.core.jobs.Job` rows; the study protocol's
layout part): which jobs exist, the files each writes (:data:`PATTERNS`), the stage each belongs
to, the jobs it reads. The rules (rules/mask/*.smk), STATUS, the planner (ablate.mask.plan) and the
recovery table (its rule's params) all take it from here.

Pure Python (no torch): the Snakefile imports it at parse time, and a no-op rerun must stay fast.
"""

from __future__ import annotations

from typing import Any

from ablate.core.config import ConfigError, schema_defaults, sorted_tree
from ablate.core.jobs import Job, benchmark_pattern, log_pattern, make_job
from ablate.mask import models as model_dim

POLICIES: tuple[str, ...] = ("causal", "prefill_bidir", "prefix_bidir")
#: What each policy lets a token see: the one wording every help text and document uses.
POLICY_DESCRIPTIONS: dict[str, str] = {
    "causal": "the standard causal mask: each token sees itself and the tokens before it",
    "prefill_bidir": (
        "no causal mask in any forward of more than one token, over prompt and answer alike; "
        "single-token decode steps stay causal (the prefill-mask ablation study's ablation). "
        "Teacher-forced, the prediction of an answer token sees that token and the later ones: a label leak in "
        "training, and in scoring for every answer token but the last (the last is not in "
        "lm-eval's input row), so only multi-token answers are affected; under the original "
        "study's rows (mask.eval.protocol: original) every answer token is in the input and "
        "every answer leaks"
    ),
    "prefix_bidir": (
        "prompt tokens see the whole prompt in both directions; answer tokens stay causal (the "
        "whole prompt and earlier answer tokens): a prefix-LM, no leakage"
    ),
}
assert set(POLICY_DESCRIPTIONS) == set(POLICIES)


def policy_help() -> str:
    """One line per policy, for command-line help and logs."""
    return "; ".join(f"{p}: {POLICY_DESCRIPTIONS[p]}" for p in POLICIES)


VARIANT_META = ("stage", "policy", "extends", "allow_leakage", "seeds")


def seed_name(name: str, seed: int) -> str:
    """The variant (and its files, job and run) that trains ``name`` with training seed ``seed``."""
    return f"{name}-s{seed}"


def resolve_variants(
    variants: dict[str, dict[str, Any]], defaults: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """name -> {stage, policy, extends, allow_leakage, params}; params = defaults + overrides.

    A stage-5 variant inherits policy, allow_leakage, seeds and overrides of the stage-3 variant
    it extends, then applies its own. A variant with ``seeds: [s, ...]`` becomes one variant per
    seed, :func:`seed_name` (``3B-s6``), each with ``params.seed`` = s and ``base`` / ``seed``
    naming where it came from; the seed the variant trains with anyway (its ``params.seed``)
    keeps the variant's name, files and job: that seed's run is the variant's run, not a copy of
    it. A variant without ``seeds`` keeps its name and its files.
    """
    out = {}
    for name, v in _resolve_declared(variants, defaults).items():
        seeds = v.pop("seeds")
        if seeds is None:
            out[name] = v
            continue
        for s in seeds:
            own = s == v["params"]["seed"]
            if not own and seed_name(name, s) in variants:
                raise ConfigError(
                    f"invalid config at mask.finetune.variants.{seed_name(name, s)}: the name is also "
                    f"a seed of {name!r} (a variant with seeds trains <name>-s<seed>)"
                )
            params = sorted_tree({**v["params"], "seed": s})
            out[name if own else seed_name(name, s)] = dict(v, params=params, base=name, seed=s)
    return out


def seeds_of(variants: dict[str, dict[str, Any]], name: str) -> list[str]:
    """The resolved variants of the declared variant ``name``: itself, or one per seed."""
    mine = [(v.get("seed", -1), n) for n, v in variants.items() if v.get("base", n) == name]
    return [n for _, n in sorted(mine)]


def _resolve_declared(
    variants: dict[str, dict[str, Any]], defaults: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """:func:`resolve_variants` before its seeds are expanded (``seeds``: the list or None)."""
    out = {}
    for name, v in variants.items():
        key = f"mask.finetune.variants.{name}"
        parent: dict[str, Any] = {}
        if v["stage"] == 5:
            base = v.get("extends")
            if base not in variants:
                raise ConfigError(
                    f"invalid config at {key}.extends: variant {base!r} does not exist "
                    f"(mask.finetune.variants has: {', '.join(sorted(variants))})"
                )
            if variants[base]["stage"] != 3:
                raise ConfigError(
                    f"invalid config at {key}.extends: {base!r} is a stage-{variants[base]['stage']} "
                    "variant; a stage-5 variant extends a stage-3 one"
                )
            parent = variants[base]
        overrides = {
            **{k: x for k, x in parent.items() if k not in VARIANT_META},
            **{k: x for k, x in v.items() if k not in VARIANT_META},
        }
        out[name] = dict(
            stage=v["stage"],
            policy=v.get("policy", parent.get("policy")),
            extends=v.get("extends"),
            allow_leakage=bool(v.get("allow_leakage", parent.get("allow_leakage", False))),
            params=sorted_tree({**defaults, **overrides}),
            seeds=v.get("seeds", parent.get("seeds")),
        )
    return out


#: The variant roles of the mask study's claims (config ``mask.claims:``; src/ablate/mask/claims.py).
CLAIM_ROLES = ("prefix_variant", "causal_variant", "long_variant")


def resolve_claims(claims: dict[str, Any], variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``claims:`` block with each role checked against the finetune variants; a role set to
    null is left out (its claims are not made). Returns the block plus each named variant's stage
    and policy, the params of the claims rule."""
    out = dict(claims)
    declared = sorted({v.get("base", n) for n, v in variants.items()})
    for role in CLAIM_ROLES:
        name = claims.get(role)
        if name is None:
            continue
        if name not in declared:
            raise ConfigError(
                f"invalid config at mask.claims.{role}: variant {name!r} does not exist "
                f"(mask.finetune.variants has: {', '.join(declared)}; null leaves its claims out)"
            )
    named = sorted({claims[r] for r in CLAIM_ROLES if claims.get(r) is not None})
    out["variants"] = {
        n: dict(stage=variants[n]["stage"], policy=variants[n]["policy"])
        for n in sorted(s for name in named for s in seeds_of(variants, name))
    }
    seeded = {
        n: {v: variants[v]["seed"] for v in seeds_of(variants, n)}
        for n in named
        if any("seed" in variants[v] for v in seeds_of(variants, n))
    }
    if seeded:  # a role's variant has seeds: its claims are stated per seed and pooled
        out["seeds"] = seeded
    return sorted_tree(out)


def claims_evaluations(claims: dict[str, Any], ablated: str) -> list[tuple[str, str]]:
    """(model, policy) of every evaluation the claims read: the base model and each variant a
    role names (:func:`resolve_claims`'s ``variants``), under causal and the ablated policy."""
    models = ["base", *sorted(claims["variants"])]
    return [(m, p) for m in models for p in ("causal", ablated)]


# ------------------------------------------------------------------ files and the job list

#: Each rule's log file (and a planned rule's benchmark file) in its rule's folder
#: (:data:`ablate.core.jobs.LOG`), the rule's wildcards in braces.
FILE_STEMS = {
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
    return log_pattern(rule, FILE_STEMS[rule])


def _benchmark(rule: str) -> str:
    return benchmark_pattern(rule, FILE_STEMS[rule])


#: Every file the mask study's rules write, relative to the results folder (config key
#: `results`): outputs, logs and benchmarks. The rules (rules/mask/*.smk), the planner
#: (ablate.mask.plan) and the recovery table take their paths from here.
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
    # a multi-model config (mask.models): each model's files above are under MODEL_DIR; its
    # cross-model table and claims are the files above, their logs these
    "models_recovery_log": _log("models_recovery"),
    "models_claims_log": _log("models_claims"),
}
BASE = "base"  # the evaluated model name of the base model (the others are variants)
#: The keys of ``mask:`` read by the jobs without a config slice alone (the recovery table, its
#: plots, the claims): an experiment that changes one runs those (ablate.core.experiments).
TABLE_KEYS = ("claims",)
#: the folders of a results tree that hold its models' studies (ablate.core.runs: not trees)
PART_FOLDERS = (model_dim.MODEL_DIR.split("/")[0],)
#: The rule's output names and the PATTERNS keys they come from (a rule's `output:` names).
RULE_OUTPUTS: dict[str, dict[str, str]] = {
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
RULE_OUTPUTS["models_recovery"] = RULE_OUTPUTS["recovery_table"]
RULE_OUTPUTS["models_claims"] = RULE_OUTPUTS["mask_claims"]


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


def eval_policies(config: dict[str, Any]) -> list[str]:
    """Every model is evaluated under causal and under the ablated policy."""
    return list(dict.fromkeys(["causal", config["mask"]["eval"]["ablated_policy"]]))


def train_policies(variants: dict[str, Any]) -> list[str]:
    return sorted({v["policy"] for v in variants.values()})


def eval_stage(model: str, policy: str, variants: dict[str, Any]) -> int:
    """base x causal = 1, base x ablated = 2, a stage-3 finetune's evaluation = 4, a stage-5 one's 5."""
    if model == BASE:
        return 1 if policy == "causal" else 2
    return {3: 4, 5: 5}[int(variants[model]["stage"])]


def variants_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    finetune = config["mask"]["finetune"]
    return resolve_variants(finetune["variants"], finetune["defaults"])


def sft_rows(config: dict[str, Any]) -> tuple[int, str] | None:
    """(rows, where that count comes from) of the SFT data the finetunes split, when it is
    known before any job: the embedded data's ``mask.data.embedded.sft_pairs``, or the
    non-blank lines of a local .jsonl; None for a hub dataset (known once downloaded)."""
    from pathlib import Path

    from ablate.mask import sft_data

    data = config["mask"]["data"]
    if data["source"] == "embedded":
        return data["embedded"]["sft_pairs"], "mask.data.embedded.sft_pairs"
    path = Path(data["sft"])
    if not sft_data.is_local(data["sft"]) or not path.is_file():
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip()), f"the rows of {path}"


def check_eval_sizes(config: dict[str, Any], variants: dict[str, dict[str, Any]]) -> None:
    """Each finetune's ``eval_size`` below the SFT data's rows (:func:`sft_rows`), so it leaves
    rows to train on: checked at parse time, as the finetune's own check comes only after
    Snakemake has removed the outputs of the finished run it replaces. ConfigError naming the
    key, its value and the limit."""
    known = sft_rows(config)
    if known is None:
        return
    rows, source = known
    for name, variant in variants.items():
        n = variant["params"]["eval_size"]
        if n and n >= rows:
            where = finetune_where(config, name, variant)["params.eval_size"]
            raise ConfigError(
                f"invalid config at {where}: {n} held-out rows leave none to train on: the SFT "
                f"data has {rows} ({source}); set it below {rows}"
            )


#: Each rule's config slice (``Job.config``: what its rule passes as ``params.config`` and its
#: record's provenance holds) that is one node of the config: the node's path under ``mask``.
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


def finetune_where(config: dict[str, Any], name: str, variant: dict[str, Any]) -> dict[str, str]:
    """Where the config sets each key of a finetune's slice now (the stale line names it): the
    variant declared (a seed's: its declared variant), the stage-3 variant a stage-5 one
    extends, else ``mask.finetune.defaults``."""
    declared = config["mask"]["finetune"]["variants"]
    own = variant.get("base", name)
    at = f"mask.finetune.variants.{own}"

    def origin(key: str) -> str:
        for d in (own, variant.get("extends")):
            if d and key in declared.get(d, {}):
                return f"mask.finetune.variants.{d}.{key}"
        return f"mask.finetune.defaults.{key}"

    where = {"": at, **{k: f"{at}.{k}" for k in ("variant", "stage", "policy", "allow_leakage")}}
    where.update({f"params.{k}": origin(k) for k in variant["params"]})
    if "seed" in variant:  # a seed of a variant with seeds: one of its (or its parent's) seeds
        seeds_at = own if "seeds" in declared.get(own, {}) else variant.get("extends")
        where["params.seed"] = f"mask.finetune.variants.{seeds_at}.seeds"
    return where


def _job(cfg: dict[str, Any], rule: str, name: str, files: str, **kw: Any) -> Job:
    """A core Job of this study (:func:`ablate.core.jobs.make_job`): its outputs
    (``RULE_OUTPUTS[files]``), its log and benchmark (:data:`FILE_STEMS`), its config slice
    (``config`` when given, else a node of :data:`SLICE_NODES`) and where the config sets its
    keys (``labels["where"]``); the mask-only facts (model, policy, variant) in ``labels``."""
    wc = kw.pop("wildcards", {})
    outputs = {n: PATTERNS[key].format(**wc) for n, key in RULE_OUTPUTS[files].items()}
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
        name,
        outputs,
        folder=rule,
        stem=FILE_STEMS[rule].format(**wc),
        wildcards=wc,
        resources=resources.get(RESOURCE_GROUP.get(rule)),
        labels=labels,
        **kw,
    )


def _setup_jobs(config: dict[str, Any]) -> list[Job]:
    """The data (embedded) and the base model: pretrained here (embedded) or registered."""
    out = []
    if config["mask"]["data"]["source"] == "embedded":
        out.append(_job(config, "make_data", "make_data", "make_data"))
    base = dict(stage=0, model=BASE)
    if config["mask"]["model"]["source"] == "embedded":
        base.update(kind="train", record="summary")
        base.update(policy="causal", files="prepare_model", upstream=["make_data"])  # corpus
    else:  # recorded (or downloaded) on the submit host: not GPU work, not planned
        base.update(record="card", files="register_model")
    out.append(_job(config, "prepare_model", "prepare_model", **base))
    return out


def _train_jobs(config: dict[str, Any], variants: dict[str, Any]) -> list[Job]:
    """The leakage probe of each training policy, then each variant's finetune."""
    setup = ["make_data", "prepare_model"]
    out = [
        _job(
            config,
            "leakage_probe",
            f"leakage/{p}",
            "leakage_probe",
            record="probe",
            wildcards={"policy": p},
            kind="probe",
            upstream=setup,
            model=BASE,
            policy=p,
        )
        for p in train_policies(variants)
    ]
    out += [
        _job(
            config,
            "finetune",
            f"finetune/{n}",
            "finetune",
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
    hub tasks' datasets (``datasets``: task -> path, name, commit) pinned by the hub revisions'
    lock (:func:`ablate.mask.tasks.pinned_datasets`), so a new pin reruns the evaluations and
    never restores the old result. The embedded tasks (generated files) are the slice alone.
    Each of :data:`LATE_EVAL_KEYS` (the user's task folders, the softmax dtype) is in it when
    set off its default: a slice without, as before it existed, for a study that leaves it."""
    late = schema_defaults("properties/mask/properties/eval")
    node = {
        k: v for k, v in config["mask"]["eval"].items() if k not in LATE_EVAL_KEYS or v != late[k]
    }
    if config["mask"]["data"]["source"] == "embedded":
        return sorted_tree(node), "mask.eval"
    from ablate.core.hub_revisions import lock_path
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
        for policy in eval_policies(config):
            out.append(
                _job(
                    config,
                    "eval_model",
                    f"eval/{model}/{policy}",
                    "eval_model",
                    record="metrics",
                    wildcards={"model": model, "policy": policy},
                    stage=eval_stage(model, policy, variants),
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


def claims_upstream(
    config: dict[str, Any], variants: dict[str, Any], evals: list[Job]
) -> list[str]:
    """The evaluations the claims read (the base model and each variant a role of
    ``mask.claims`` names: a role set to null reads none), as job names: the claims rule's
    inputs, so STATUS does not call the claims stale for an evaluation it never reads."""
    claimed = claims_evaluations(
        resolve_claims(config["mask"]["claims"], variants), config["mask"]["eval"]["ablated_policy"]
    )
    return [j.name for j in evals if (j.labels["model"], j.labels["policy"]) in claimed]


def _table_jobs(
    config: dict[str, Any], evals: list[str], finetunes: list[str], claimed: list[str]
) -> list[Job]:
    """The recovery table, the report's plots and the claims, from the evaluations; each job's
    upstream the jobs whose files its rule reads (STATUS calls it stale as Snakemake reruns it)."""
    pretrain = ["prepare_model"] if config["mask"]["model"]["source"] == "embedded" else []
    return [
        _job(
            config,
            "recovery_table",
            "recovery_table",
            "recovery_table",
            upstream=evals + finetunes,  # the finetunes' summaries: their steps and stop
        ),
        _job(config, "plot_scores", "plot_scores", "plot_scores", upstream=["recovery_table"]),
        _job(
            config,
            "plot_loss_curves",
            "plot_loss_curves",
            "plot_loss_curves",
            upstream=pretrain + finetunes,
        ),
        _job(config, "mask_claims", "mask_claims", "mask_claims", upstream=claimed),
    ]


def jobs(config: dict[str, Any], variants: dict[str, Any] | None = None) -> list[Job]:
    """Every job of the mask study for a schema-validated config, in run order (core Jobs: the
    rules, STATUS and the planner read them). A multi-model config (``mask.models``): the data,
    then each model's study in its folder (:func:`ablate.mask.models.in_model`), then the
    cross-model table and claims.

    ``variants``: the resolved finetune variants, when the caller already has them.
    """
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
    """One model's study (``mask.model``): data, base model, probes, finetunes, evaluations, the
    table, plots and claims."""
    trains = _train_jobs(config, variants)
    evals = _eval_jobs(config, variants)
    finetunes = [j.name for j in trains if j.rule == "finetune"]
    claimed = claims_upstream(config, variants, evals)
    tables = _table_jobs(config, [j.name for j in evals], finetunes, claimed)
    return _setup_jobs(config) + trains + evals + tables


def _cross_model_jobs(config: dict[str, Any], per_model: list[Job]) -> list[Job]:
    """The cross-model recovery table and claims, from each model's table and claims."""

    def of(rule: str) -> list[str]:
        return [j.name for j in per_model if j.rule == rule]

    return [
        _job(
            config,
            "models_recovery",
            "models_recovery",
            "models_recovery",
            upstream=of("recovery_table"),
        ),
        _job(config, "models_claims", "models_claims", "models_claims", upstream=of("mask_claims")),
    ]


def targets(config: dict[str, Any]) -> list[str]:
    """The files a full run of the mask study ends with: the recovery table, plots, claims (a
    multi-model config: the cross-model table and claims, and each model's plots)."""
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
    """metrics.json path -> {stage, variant, train_policy}: how the recovery table labels a row
    (and a seed's ``base`` variant and ``seed``)."""
    return {
        j.outputs["metrics"]: dict(
            stage=j.stage,
            variant=j.labels["model"],
            train_policy=j.labels["variant"]["policy"] if j.labels["variant"] else None,
            **{
                k: j.labels["variant"][k]
                for k in ("base", "seed")
                if k in (j.labels["variant"] or {})
            },
        )
        for j in job_list
        if j.rule == "eval_model"
    }


def plan_config(config: dict[str, Any]) -> dict[str, Any]:
    """The study's section (resources: each job's gpu count, for the data-parallel speedup and
    the jobs side by side) with, of its claims, the roles alone: they name the evaluations the
    claims job reads (the job list the planner builds); a margin or level leaves the plan as is."""
    roles = {r: config["mask"]["claims"].get(r) for r in CLAIM_ROLES}
    return {**{k: v for k, v in config["mask"].items() if k != "claims"}, "claims": roles}
