"""The mask study's front door: the README's caption under its picture and docs/embedded.md's
"What the default shows", rendered by ``ablate expected --write`` from a row of
docs/expected_results.csv. No torch, no pandas."""

from __future__ import annotations

from collections.abc import Mapping

from ablate.mask.answer import percent
from ablate.mask.layout import BASE  # the model every finetune starts from

#: the eval policy without the ablation; the study's other policy is the ablated one
_CAUSAL = "causal"


def macro_scores(quantities: Mapping[str, str]) -> dict[tuple[str, str], float]:
    """(model, eval policy) -> macro score: the quantities ``<model> under <policy>``."""
    out = {}
    for q, v in quantities.items():
        if " under " in q and ":" not in q:
            model, policy = q.split(" under ", 1)
            out[model, policy] = float(v)
    return out


def ablated_policy(scores: Mapping[tuple[str, str], float]) -> str:
    """The policy the base model was evaluated under besides ``causal``."""
    policies = sorted(p for m, p in scores if m == BASE and p != _CAUSAL)
    if len(policies) != 1:
        raise ValueError(f"the row's base model has {len(policies)} ablated policies, not one")
    return policies[0]


def recovered_shares(scores: Mapping[tuple[str, str], float]) -> dict[str, float] | None:
    """Each finetune's share of the macro drop it wins back; None where there is no drop."""
    ablated = ablated_policy(scores)
    lo, drop = scores[BASE, ablated], scores[BASE, _CAUSAL] - scores[BASE, ablated]
    if drop <= 0:
        return None
    return {
        m: (s - lo) / drop for (m, p), s in sorted(scores.items()) if p == ablated and m != BASE
    }


def _verdicts(quantities: Mapping[str, str], family: str) -> dict[str, str]:
    """The per-task verdicts of a claim family: ``ablation_hurts/<task>`` -> task -> verdict."""
    return {
        q.split("/", 1)[1]: v for q, v in sorted(quantities.items()) if q.startswith(f"{family}/")
    }


def caption(quantities: Mapping[str, str], label: str) -> str:
    """The README's caption under ``results/plots/scores.png``."""
    scores = macro_scores(quantities)
    ablated = ablated_policy(scores)
    hurt = _verdicts(quantities, "ablation_hurts")
    lowered = [t for t, v in hurt.items() if v == "supported"]
    drop = (
        f"the ablation (`{ablated}`, hatched) lowers {len(lowered)} of {len(hurt)} tasks "
        f"significantly ({', '.join(lowered) or 'none'}) and the macro score from "
        f"{scores[BASE, _CAUSAL]:.3f} to {scores[BASE, ablated]:.3f}"
    )
    shares = recovered_shares(scores)
    if not shares:
        won = "no finetune has a drop to win back" if shares is None else "no finetune ran"
    else:
        (first, share), *rest = shares.items()
        won = f"{first} wins back {percent(share)} of that drop" + "".join(
            f", {m} {percent(s)}" for m, s in rest
        )
    return f"*`results/plots/scores.png` of the embedded default on {label}: {drop}; {won}.*"


def shows(quantities: Mapping[str, str], label: str) -> str:
    """docs/embedded.md's "What the default shows": macro scores and shares, then the claims."""
    scores = macro_scores(quantities)
    ablated = ablated_policy(scores)
    shares = recovered_shares(scores) or {}
    models = sorted({m for m, _ in scores}, key=lambda m: (m != BASE, m))
    lines = [
        f"The embedded default's run on {label}:",
        "",
        f"| model | {_CAUSAL} | {ablated} (ablated) | recovered share of the drop |",
        "|---|---|---|---|",
    ]
    for m in models:
        cells = [scores.get((m, p)) for p in (_CAUSAL, ablated)]
        shown = [f"{c:.3f}" if c is not None else "" for c in cells]
        share = percent(shares[m]) if m in shares else ""
        lines.append(f"| {m} | {' | '.join(shown)} | {share} |")
    lines += ["", "| claim | verdict |", "|---|---|"]
    claims = {q: v for q, v in quantities.items() if " under " not in q and "/" not in q}
    for claim in sorted(claims):
        lines.append(f"| `{claim}` | {claims[claim]} |")
        if tasks := _verdicts(quantities, claim):
            lines.append(f"| `{claim}/<task>` | {_family_line(tasks)} |")
    return "\n".join(lines)


def _family_line(tasks: Mapping[str, str]) -> str:
    """``supported for 3 of 5 tasks (a, b, c); inconclusive: d; not supported: e``."""
    by: dict[str, list[str]] = {}
    for task, verdict in tasks.items():
        by.setdefault(verdict, []).append(task)
    held = by.pop("supported", [])
    line = f"supported for {len(held)} of {len(tasks)} tasks" + (
        f" ({', '.join(held)})" if held and len(held) < len(tasks) else ""
    )
    return "; ".join([line, *(f"{v}: {', '.join(ts)}" for v, ts in sorted(by.items()))])
