"""The study layout derived from a config: policies and resolved finetune variants.

Pure Python (no torch): the Snakefile imports it at parse time, and a no-op rerun must stay fast.
Shared by rules/common.smk and the planner so the variant rules have one definition.
"""

from __future__ import annotations

from typing import Any

from ablate.core.config import ConfigError, sorted_tree

POLICIES: tuple[str, ...] = ("causal", "prefill_bidir", "prefix_bidir")
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


#: The variant roles of the mask study's claims (config ``claims:``; src/ablate/mask/claims.py).
CLAIM_ROLES = ("prefix_variant", "causal_variant", "long_variant")


def resolve_claims(claims: dict[str, Any], variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``claims:`` block with each role checked against the finetune variants; a role set to
    null is left out (its claims are not made). Returns the block plus each named variant's stage
    and policy, the params of the claims rule."""
    out = dict(claims)
    for role in CLAIM_ROLES:
        name = claims.get(role)
        if name is None:
            continue
        if name not in variants:
            raise ConfigError(
                f"invalid config at claims.{role}: variant {name!r} does not exist "
                f"(finetune.variants has: {', '.join(sorted(variants))}; null leaves its claims out)"
            )
    named = sorted({claims[r] for r in CLAIM_ROLES if claims.get(r) is not None})
    out["variants"] = {
        n: dict(stage=variants[n]["stage"], policy=variants[n]["policy"]) for n in named
    }
    return sorted_tree(out)


def claims_evaluations(claims: dict[str, Any], ablated: str) -> list[tuple[str, str]]:
    """(model, policy) of every evaluation the claims read: the base model and each variant a
    role names (:func:`resolve_claims`'s ``variants``), under causal and the ablated policy."""
    models = ["base", *sorted(claims["variants"])]
    return [(m, p) for m in models for p in ("causal", ablated)]
