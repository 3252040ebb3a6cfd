"""The mask study's claims, computed from its evaluations (results/claims/mask.csv).

Each claim, its config keys and its rule: docs/claims.md, "The mask study's claims". An evaluation
that does not exist yet makes its claims "not run"."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.reports.claims import (
    Claim,
    ClaimResult,
    Evidence,
    Samples,
    beats,
    evaluate_claims,
    evaluate_seeded,
    exceeds,
    paired,
    within_margin,
)
from ablate.mask import answer, items

_STUDY = "mask"
#: how the statements name the finetune playing each role
_ROLE_NAMES = {
    "prefix": "prefix-LM finetune",
    "long": "long-run finetune",
    "causal": "causal finetune",
}


def key(model: str, policy: str, task: str | None = None) -> str:
    """Name of an evaluation's per-item results in the evidence: ``3B@prefill_bidir[/task]``."""
    return f"{model}@{policy}" + (f"/{task}" if task else "")


def _label(model: str, policy: str, task: str | None = None) -> str:
    """How evidence lines name an evaluation: ``3B under prefill_bidir[ on task]``."""
    return f"{model} under {policy}" + (f" on {task}" if task else "")


def _tests(cfg: dict[str, Any]) -> dict[str, Any]:
    """The paired tests' settings of a resolved ``claims:`` block."""
    return {"alpha": cfg["alpha"], "min_n": cfg["min_n"]}


def _above_chance(name: str, margin: float, cfg: dict[str, Any]):
    """Rule for a "learned" claim: ``name`` above its chance (from its metrics) + ``margin``."""
    return exceeds(name, lambda ev: ev.params["chance"][name] + margin, **_tests(cfg))


def _hurts_broadly(s1: str, s2: str, tasks: list[str], cfg: dict[str, Any]):
    """Rule: the macro drops significantly by ``min_drop`` or more, ``min_tasks_hurt`` tasks too."""
    alpha, min_drop, min_tasks = cfg["alpha"], cfg["min_drop"], cfg["min_tasks_hurt"]

    def rule(ev: Evidence) -> ClaimResult:
        # diff = s1 - s2 (the drop, positive), the sign "ablation_hurts" prints for the same drop
        macro = paired(ev, s2, s1, alpha=alpha)
        hurt = []
        for t in tasks:
            r = paired(ev, f"{s2}/{t}", f"{s1}/{t}", alpha=alpha)
            if r.diff > 0 and r.significant:
                hurt.append(f"{t} {r.diff:+.3f}")
        evidence = (
            f"macro {ev[s1].label} {macro.mean_b:.3f} - {ev[s2].label} {macro.mean_a:.3f}: "
            f"{macro.line()}; {len(hurt)} of {len(tasks)} tasks drop significantly"
            + (f" ({', '.join(hurt)})" if hurt else "")
            + f"; needs a drop >= {min_drop:g} and >= {min_tasks} tasks"
        )
        if macro.n < cfg["min_n"]:
            verdict = "inconclusive"
        elif macro.diff >= min_drop and macro.significant and len(hurt) >= min_tasks:
            verdict = "supported"
        else:
            verdict = "not supported"
        numbers = {"macro": macro.as_dict(), "tasks_hurt": len(hurt)}
        return ClaimResult(verdict, evidence, numbers, macro.test, macro.p_value, macro.n)

    return rule


def _recovers(subject: str, name: str, s1: str, s2: str, cfg: dict[str, Any]):
    """Rule: ``subject`` beats ``s2``, with the share of the drop ``s1 - s2`` it wins back (no
    drop: inconclusive)."""
    alpha = cfg["alpha"]
    win = beats(subject, s2, **_tests(cfg))

    def rule(ev: Evidence) -> ClaimResult:
        r = win(ev)
        drop = paired(ev, s2, s1, alpha=alpha)  # diff = s1 - s2, the drop
        if not drop.diff > 0:
            said = answer.NO_DROP.format(drop=drop.diff)
            return replace(r, verdict="inconclusive", evidence=f"{r.evidence}; {said}")
        share, low, high = (r.numbers[k] / drop.diff for k in ("diff", "ci_low", "ci_high"))
        said = answer.share_text(name, share, drop.diff, low, high, alpha)
        numbers = {**r.numbers, "drop": drop.diff, "share": share}
        numbers |= {"share_ci_low": low, "share_ci_high": high}
        return replace(r, evidence=f"{r.evidence}; {said}", numbers=numbers)

    return rule


def _recovery_claims(cfg: dict[str, Any], ablated: str) -> list[Claim]:
    """(r) Each role's finetune under the ablation above the base under it."""
    s1, s2 = key("base", "causal"), key("base", ablated)
    out = []
    for role in answer.RECOVERY_ROLES:
        name = cfg.get(f"{role}_variant")
        if name is None:
            continue
        aside = " (stated beside the others; the finding does not need it)" * (role == "causal")
        out.append(
            Claim(
                answer.claim_id(role),
                f"Under the ablated evaluation ({ablated}), the {_ROLE_NAMES[role]} {name} scores "
                f"above the base model under it (stage 2): it wins back part of the ablation's "
                f"drop (macro){aside}.",
                _recovers(key(name, ablated), name, s1, s2, cfg),
            )
        )
    return out


def _learned_claims(cfg: dict[str, Any], tasks: list[str]) -> list[Claim]:
    """(0) The base model learned the tasks: stage 1 above chance, on the macro and per task."""
    learned, learned_macro = cfg["learned_margin"], cfg["learned_margin_macro"]
    out = [
        Claim(
            "learned",
            f"The base model learned the tasks: its stage-1 macro score is more than "
            f"{learned_macro:g} above chance.",
            _above_chance(key("base", "causal"), learned_macro, cfg),
        )
    ]
    out += [
        Claim(
            f"learned/{t}",
            f"The base model learned {t}: its stage-1 score is more than {learned:g} above chance.",
            _above_chance(key("base", "causal", t), learned, cfg),
        )
        for t in tasks
    ]
    return out


def _ablation_claims(cfg: dict[str, Any], ablated: str, tasks: list[str]) -> list[Claim]:
    """(a) The ablation hurts: stage 2 below stage 1, on the macro, per task, and broadly."""
    s1, s2 = key("base", "causal"), key("base", ablated)
    out = [
        Claim(
            "ablation_hurts",
            f"Removing the causal mask at prefill ({ablated}) lowers the base model's macro score "
            "(stage 2 < stage 1).",
            beats(s1, s2, **_tests(cfg)),
        )
    ]
    out += [
        Claim(
            f"ablation_hurts/{t}",
            f"The ablation ({ablated}) lowers the base model's score on {t} (stage 2 < stage 1).",
            beats(key("base", "causal", t), key("base", ablated, t), **_tests(cfg)),
        )
        for t in tasks
    ]
    out.append(
        Claim(
            "ablation_hurts_broadly",
            f"The ablation ({ablated}) lowers the macro by at least {cfg['min_drop']:g}, with at "
            f"least {cfg['min_tasks_hurt']} tasks each significantly lower.",
            _hurts_broadly(s1, s2, tasks, cfg),
        )
    )
    return out


def _finetune_claims(cfg: dict[str, Any], ablated: str, role: str, name: str) -> list[Claim]:
    """(b) and (c) for the variant ``name`` playing ``role`` (prefix or long)."""
    prefix, causal = cfg.get("prefix_variant"), cfg.get("causal_variant")
    what, margin = _ROLE_NAMES[role], cfg["side_effect_margin"]
    out = []
    if causal is not None:
        out.append(
            Claim(
                f"{role}_recovers_more",
                f"Under the ablated evaluation ({ablated}), the {what} {name} scores above "
                f"the causal finetune {causal} (macro).",
                beats(key(name, ablated), key(causal, ablated), **_tests(cfg)),
            )
        )
    if role == "long" and prefix is not None:
        long_margin = cfg["long_margin"]
        out.append(
            Claim(
                "long_at_least_prefix",
                f"Under the ablated evaluation ({ablated}), the long-run finetune {name} "
                f"scores at least as high as the prefix-LM finetune {prefix} (at most "
                f"{long_margin:g} below it; macro).",
                within_margin(key(name, ablated), key(prefix, ablated), long_margin, **_tests(cfg)),
            )
        )
    out.append(
        Claim(
            f"{role}_side_effect_small",
            f"Under causal evaluation, the {what} {name} is at most {margin:g} below stage 1 "
            "(macro).",
            within_margin(key(name, "causal"), key("base", "causal"), margin, **_tests(cfg)),
        )
    )
    return out


def mask_claims(cfg: dict[str, Any], ablated: str, tasks: Iterable[str]) -> list[Claim]:
    """The claims of the study for a resolved ``claims:`` block (variants.resolve_claims)."""
    tasks = list(tasks)
    out = _learned_claims(cfg, tasks) + _ablation_claims(cfg, ablated, tasks)
    out += _recovery_claims(cfg, ablated)
    for role, name in (("prefix", cfg.get("prefix_variant")), ("long", cfg.get("long_variant"))):
        if name is not None:
            out += _finetune_claims(cfg, ablated, role, name)
    return out


def context(metrics_files: Iterable[str | Path], samples_files: Iterable[str | Path]) -> Evidence:
    """Per-item correctness of every evaluation whose metrics.json and samples.parquet exist."""
    samples = {Path(f).parent: Path(f) for f in samples_files}
    inputs: dict[str, Samples] = {}
    chance: dict[str, float] = {}
    for m in map(Path, metrics_files):
        s = samples.get(m.parent)
        if not m.exists() or s is None or not s.exists():
            continue  # not run yet: claims that need it say so
        metrics = json.loads(m.read_text())
        correct = items.correctness(metrics, items.load(s), str(s))
        model, policy = m.parts[-3:-1]
        source = f"{m.parent} (run {metrics.get('run_id')})"
        inputs[key(model, policy)] = Samples(correct, source, _label(model, policy))
        chance[key(model, policy)] = metrics["macro"]["chance"]
        for task, values in correct.groupby(level=0):
            inputs[key(model, policy, task)] = Samples(values, source, _label(model, policy, task))
            chance[key(model, policy, task)] = metrics["tasks"][task]["chance"]
    return Evidence(inputs, params={"chance": chance})


def protocol_note(metrics_files: Iterable[str | Path], sft_formats: Iterable[str]) -> str:
    """The line under the claims table (:func:`ablate.mask.recovery.protocol_line`)."""
    from ablate.mask.recovery import protocol_line

    records = [json.loads(Path(m).read_text()) for m in metrics_files if Path(m).exists()]
    protocols = [(r.get("provenance") or {}).get("config", {}).get("protocol") for r in records]
    metrics = [t["headline_metric"] for r in records for t in r["tasks"].values()]
    return protocol_line(protocols, metrics, sft_formats)


def claims_table(
    cfg: dict[str, Any],
    ablated: str,
    tasks: Iterable[str],
    metrics_files: Iterable[str | Path],
    samples_files: Iterable[str | Path],
) -> pd.DataFrame:
    ev = context(metrics_files, samples_files)
    claims = mask_claims(cfg, ablated, list(tasks))
    if "seeds" in cfg:  # a role's variant has seeds: pooled and per seed
        seeds, labels = _seed_inputs(cfg["seeds"], ablated, tasks)
        return evaluate_seeded(claims, ev, seeds, _STUDY, labels)
    return evaluate_claims(claims, ev, study=_STUDY)


def _seed_inputs(
    seeds: dict[str, dict[str, int]], ablated: str, tasks: Iterable[str]
) -> tuple[dict[str, dict[int, str]], dict[str, str]]:
    """Each evidence name of a seeded variant -> {seed: its seed's name}, and its pooled label."""
    out: dict[str, dict[int, str]] = {}
    labels: dict[str, str] = {}
    for name, variants in seeds.items():
        for policy in dict.fromkeys(("causal", ablated)):
            for task in (None, *tasks):
                k = key(name, policy, task)
                out[k] = {s: key(v, policy, task) for v, s in variants.items()}
                labels[k] = _label(name, policy, task)
    return out, labels
