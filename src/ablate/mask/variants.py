"""The mask study's finetune variants as its config declares them, resolved, and the checks of
them the workflow makes at parse time. Pure Python (no torch): the Snakefile imports it."""

from __future__ import annotations

from typing import Any

from ablate.core.config import ConfigError, sorted_tree
from ablate.core.reports.seeds import seed_name

_VARIANT_META = ("stage", "policy", "extends", "allow_leakage", "seeds")


def resolve_variants(
    variants: dict[str, dict[str, Any]], defaults: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """name -> {stage, policy, extends, allow_leakage, params}; params = defaults + overrides (a
    stage-5 variant's over those of the stage-3 one it extends). A variant with ``seeds`` becomes
    one variant per seed (``3B-s6``), but the seed it trains with anyway keeps the variant's name,
    files and job: that run is the variant's run, not a copy of it."""
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
            **{k: x for k, x in parent.items() if k not in _VARIANT_META},
            **{k: x for k, x in v.items() if k not in _VARIANT_META},
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


#: A finetune variant's key as the config names it (``<_VARIANT_KEY><name>.<key>``).
_VARIANT_KEY = "mask.finetune.variants."


def resolved_value(config: dict[str, Any], key: str) -> Any:
    """The value a declared finetune variant's dotted config ``key`` takes where it is unset."""
    name, _, rest = key.removeprefix(_VARIANT_KEY).partition(".")
    finetune = config["mask"]["finetune"]
    if not key.startswith(_VARIANT_KEY) or name not in finetune["variants"] or not rest:
        raise KeyError(key)
    node = _resolve_declared(finetune["variants"], finetune["defaults"])[name]
    parts = rest.split(".")
    if parts[0] not in _VARIANT_META and parts[0] != "stage":  # a parameter
        node = node["params"]
    for part in parts:
        node = node[part]
    return node


#: The variant roles of the mask study's claims (config ``mask.claims:``; src/ablate/mask/claims.py).
CLAIM_ROLES = ("prefix_variant", "causal_variant", "long_variant")


def resolve_claims(claims: dict[str, Any], variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``claims:`` block, its roles checked against the variants, with their stage, policy."""
    out = dict(claims)
    declared = sorted({v.get("base", n) for n, v in variants.items()})
    for role in CLAIM_ROLES:
        name = claims.get(role)
        if name is not None and name not in declared:
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
    """(model, policy) of every evaluation the claims read."""
    models = ["base", *sorted(claims["variants"])]
    return [(m, p) for m in models for p in ("causal", ablated)]


def variants_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    finetune = config["mask"]["finetune"]
    return resolve_variants(finetune["variants"], finetune["defaults"])


def sft_rows(config: dict[str, Any]) -> tuple[int, str] | None:
    """(rows, where that count comes from) of the SFT data; None before a hub dataset is read."""
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


def check_sft_sizes(config: dict[str, Any], variants: dict[str, dict[str, Any]]) -> None:
    """Each finetune's ``eval_size`` and step within the SFT rows, or ConfigError: at parse time,
    as the finetune's own check comes after Snakemake has removed the run it replaces."""
    from ablate.mask import sft_data

    known = sft_rows(config)
    if known is None:
        return
    rows, source = known
    for name, variant in variants.items():
        params, where = variant["params"], finetune_where(config, name, variant)
        n = params["eval_size"]
        if n and n >= rows:
            raise ConfigError(
                f"invalid config at {where['params.eval_size']}: {n} held-out rows leave none to "
                f"train on: the SFT data has {rows} ({source}); set it below {rows}"
            )
        counted = f" ({rows} SFT rows, {source}, less eval_size {n})"
        if why := sft_data.step_error(
            params["batch_size"], params["grad_accum"], rows - n, counted
        ):
            keys = f"{where['params.batch_size']} and {where['params.grad_accum']}"
            raise ConfigError(f"invalid config at {keys}: finetune {name}: {why}")


def finetune_where(config: dict[str, Any], name: str, variant: dict[str, Any]) -> dict[str, str]:
    """Where the config sets each key of a finetune's slice now (the stale line names it)."""
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
