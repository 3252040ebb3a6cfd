"""The study layout derived from a config: policies and resolved finetune variants.

Pure Python (no torch): the Snakefile imports it at parse time, and a no-op rerun must stay fast.
Shared by rules/common.smk and the planner so the variant rules have one definition.
"""

from __future__ import annotations

from typing import Any

from ablate.core.config import ConfigError, sorted_tree

POLICIES: tuple[str, ...] = ("causal", "prefill_bidir", "prefix_bidir")
#: What each policy lets a token see: the one wording every help text and document uses.
POLICY_DESCRIPTIONS: dict[str, str] = {
    "causal": "the standard causal mask: each token sees itself and the tokens before it",
    "prefill_bidir": (
        "no causal mask in any forward of more than one token, over prompt and answer alike; "
        "single-token decode steps stay causal (the seed's ablation). Teacher-forced, the "
        "prediction of an answer token sees that token and the later ones: a label leak in "
        "training, and in scoring for every answer token but the last (the last is not in the "
        "input), so only multi-token answers are affected"
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


VARIANT_META = ("stage", "policy", "extends", "allow_leakage")


def resolve_variants(
    variants: dict[str, dict[str, Any]], defaults: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """name -> {stage, policy, extends, allow_leakage, params}; params = defaults + overrides.

    A stage-5 variant inherits policy, allow_leakage and overrides of the stage-3 variant it
    extends, then applies its own.
    """
    out = {}
    for name, v in variants.items():
        key = f"finetune.variants.{name}"
        parent: dict[str, Any] = {}
        if v["stage"] == 5:
            base = v.get("extends")
            if base not in variants:
                raise ConfigError(
                    f"invalid config at {key}.extends: variant {base!r} does not exist "
                    f"(finetune.variants has: {', '.join(sorted(variants))})"
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
        )
    return out
