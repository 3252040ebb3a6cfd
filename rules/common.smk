# Config validation, the derived study layout (variants, stages, eval targets) and helpers.
# Nothing here imports torch: the Snakefile must parse in well under a second (no-op reruns).
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# maskablate.masks.POLICIES, restated: importing the library here would import torch
POLICIES = ["causal", "prefill_bidir", "prefix_bidir"]


def _config_error(exc):
    """A schema violation as one line naming the key path and the offending key or value."""
    cause = exc.__context__  # the jsonschema ValidationError snakemake wrapped
    if not hasattr(cause, "absolute_path"):
        return exc
    where = ".".join(str(p) for p in cause.absolute_path) or "<top level>"
    return WorkflowError(f"invalid config at {where}: {cause.message}")


try:
    validate(config, schema="../workflow/schemas/config.schema.yaml")
except WorkflowError as exc:
    raise _config_error(exc) from None


def sorted_tree(obj):
    """A copy with every mapping's keys sorted: params compare by repr, so order must not vary."""
    if isinstance(obj, dict):
        return {k: sorted_tree(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [sorted_tree(v) for v in obj]
    return obj


EMBEDDED_MODEL = config["model"]["source"] == "embedded"
EMBEDDED_DATA = config["data"]["source"] == "embedded"
if EMBEDDED_MODEL and EMBEDDED_DATA:
    # Nothing of the embedded study is on the hub: an accidental hub call fails at once instead
    # of waiting on a network that may not be there. Jobs inherit the environment.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
ABLATED = config["eval"]["ablated_policy"]
VARIANT_META = ("stage", "policy", "extends", "allow_leakage")


def _resolve_variants(variants, defaults):
    """name -> {stage, policy, allow_leakage, extends, params}; params = defaults + overrides.

    A stage-5 variant inherits policy, allow_leakage and overrides of the stage-3 variant it
    extends, then applies its own.
    """
    out = {}
    for name, v in variants.items():
        key = f"finetune.variants.{name}"
        parent = {}
        if v["stage"] == 5:
            base = v["extends"]
            if base not in variants:
                raise WorkflowError(
                    f"invalid config at {key}.extends: variant {base!r} does not exist "
                    f"(finetune.variants has: {', '.join(sorted(variants))})"
                )
            if variants[base]["stage"] != 3:
                raise WorkflowError(
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
            allow_leakage=bool(
                v.get("allow_leakage", parent.get("allow_leakage", False))
            ),
            params=sorted_tree({**defaults, **overrides}),
        )
    return out


VARIANTS = _resolve_variants(
    config["finetune"]["variants"], config["finetune"]["defaults"]
)
TRAIN_POLICIES = sorted({v["policy"] for v in VARIANTS.values()})
MODELS = ["base", *sorted(VARIANTS)]


# Base: stage 1 (causal) and stage 2 (ablated); each finetune: under the ablated policy (does it
# recover?) and under causal (what the finetune did to normal use).
EVAL_POLICIES = ["causal", ABLATED]


def eval_targets(name):
    return [f"results/eval/{m}/{p}/{name}" for m in MODELS for p in EVAL_POLICIES]


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
    return ["results/data/sft.jsonl"] if EMBEDDED_DATA else []


def task_inputs():
    return ["results/data/tasks"] if EMBEDDED_DATA else []


def model_inputs(wildcards):
    """The evaluated model: the base model card, or a finetune's final checkpoint + summary."""
    if wildcards.model == "base":
        return {"card": "results/model/base.json"}
    return {
        "checkpoint": f"results/finetune/{wildcards.model}/final",
        "summary": f"results/finetune/{wildcards.model}/summary.json",
    }


def res(group, key):
    return config["resources"][group][key]


def resources_of(group):
    """The resources of a GPU-capable group of rules; a null gpu_model is left out (any GPU)."""
    r = {k: v for k, v in config["resources"][group].items() if k != "threads"}
    if r.get("gpu_model") is None:
        r.pop("gpu_model", None)
    return r
