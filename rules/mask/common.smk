# The mask study's layout, derived from the config: variants, training policies, evaluated
# models, and the input helpers of its rules. Shared helpers (validation, out(), resources) are
# in rules/common.smk.
from ablate.mask.study import POLICIES, resolve_variants
from ablate.mask.tasks import check_task_names

EMBEDDED_MODEL = config["model"]["source"] == "embedded"
EMBEDDED_DATA = config["data"]["source"] == "embedded"
if EMBEDDED_MODEL and EMBEDDED_DATA:
    # Nothing of the embedded study is on the hub: an accidental hub call fails at once instead
    # of waiting on a network that may not be there. Jobs inherit the environment.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# A misspelled task fails here, at parse time (a dry run), not on the first GPU job; not again in
# each spawned job (a fresh cluster node would rebuild lm-eval's task index).
if workflow.is_main_process:
    try:
        check_task_names(
            [t["name"] for t in config["eval"]["tasks"]], embedded=EMBEDDED_DATA
        )
    except ConfigError as exc:
        raise WorkflowError(str(exc)) from None
ABLATED = config["eval"]["ablated_policy"]
try:
    VARIANTS = resolve_variants(
        config["finetune"]["variants"], config["finetune"]["defaults"]
    )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
TRAIN_POLICIES = sorted({v["policy"] for v in VARIANTS.values()})
MODELS = ["base", *sorted(VARIANTS)]


# Base: stage 1 (causal) and stage 2 (ablated); each finetune: under the ablated policy (does it
# recover?) and under causal (what the finetune did to normal use).
EVAL_POLICIES = ["causal", ABLATED]


def eval_targets(name):
    return [out(f"eval/{m}/{p}/{name}") for m in MODELS for p in EVAL_POLICIES]


wildcard_constraints:
    variant="|".join(sorted(VARIANTS)),
    model="|".join(MODELS),
    policy="|".join(POLICIES),


# ---------------------------------------------------------------- params (sorted sub-trees)


def model_params():
    return sorted_tree(config["model"])


def data_params():
    return sorted_tree(config["data"])


def eval_params():
    return sorted_tree(config["eval"])


def leakage_params():
    return sorted_tree(config["leakage"])


def finetune_params(wildcards):
    v = VARIANTS[wildcards.variant]
    return sorted_tree(
        dict(
            variant=wildcards.variant,
            stage=v["stage"],
            policy=v["policy"],
            allow_leakage=v["allow_leakage"],
            params=v["params"],
        )
    )


def recovery_params():
    """What the table needs to label rows: each variant's stage and training policy."""
    return sorted_tree(
        dict(
            ablated_policy=ABLATED,
            variants={
                n: dict(stage=v["stage"], policy=v["policy"])
                for n, v in VARIANTS.items()
            },
        )
    )


# ---------------------------------------------------------------- inputs and resources


def sft_params():
    """Where the Alpaca rows come from: the generated input file, or a datasets id / path."""
    if EMBEDDED_DATA:
        return {"source": "embedded"}
    return sorted_tree({k: config["data"][k] for k in ("source", "sft")})


def sft_input():
    """The generated SFT file as an input (embedded); a hub dataset is no file of this workflow."""
    return [out("data/sft.jsonl")] if EMBEDDED_DATA else []


def task_inputs():
    return [out("data/tasks")] if EMBEDDED_DATA else []


def base_model_inputs():
    """The base model's files, declared by every job that loads the model, because an executor
    without a shared filesystem (Vast) ships declared inputs only. The embedded model is the
    workflow's own; a local model directory is the user's. A hub id is no file; each job loads
    the card's pinned revision itself (model_card.locate)."""
    base = out("model/base/final") if EMBEDDED_MODEL else config["model"]["path"]
    local = EMBEDDED_MODEL or os.path.isdir(base)
    return {"card": out("model/base.json"), **({"base": base} if local else {})}


def model_inputs(wildcards):
    """The evaluated model: the base model, or a finetune's final checkpoint + summary."""
    if wildcards.model == "base":
        return base_model_inputs()
    return {
        "checkpoint": out(f"finetune/{wildcards.model}/final"),
        "summary": out(f"finetune/{wildcards.model}/summary.json"),
    }
