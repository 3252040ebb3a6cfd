"""A results tree against a base tree, as ``ablate runs`` (:mod:`ablate.core.reports.runs`) and the
end of ``ablate exp run`` show it: each study's scores, each score that moved with its paired
95 % confidence interval, and each claim whose verdict changed.

Study-agnostic: each study's status part gives its scores, claims and per-item values. No torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate import studies

#: a tree's deltas against the base: two columns and the summary's headline ones
DELTAS = ("vs base", "claims vs base", "headline vs base")
#: a delta's cell where its interval cannot be computed, and why
_NO_CI = "[CI: {why}]"
_NO_SAMPLES = "no per-sample records"


def read_part(mod: Any, part: str, results: Path, shared: Path | None) -> Any:
    """A study's ``part`` of a results tree, else of ``shared``: an experiment's base tree."""
    if not hasattr(mod, part):
        return []
    found = getattr(mod, part)(results)
    return found or (getattr(mod, part)(shared) if shared is not None else found)


def scores(results: Path, shared: Path | None = None) -> dict[str, float]:
    """Every study's ``run_scores``, named ``<study>: <score>`` (``shared``: :func:`read_part`)."""
    out = {}
    for study in studies.STUDIES:
        found = read_part(studies.side(study, "status"), "run_scores", results, shared) or {}
        out.update({f"{study}: {k}": v for k, v in found.items()})
    return out


def _samples(results: Path, names: list[str], shared: Path | None = None) -> dict[str, Any]:
    """The per-item values of each of ``names`` that its study's ``score_samples`` finds."""
    out = {}
    for study in studies.STUDIES:
        hook = getattr(studies.side(study, "status"), "score_samples", None)
        mine = [n.split(": ", 1)[1] for n in names if n.startswith(f"{study}: ")]
        if hook is not None and mine:
            out.update({f"{study}: {k}": v for k, v in hook(results, mine, shared).items()})
    return out


def ci_text(base: Any, here: Any) -> str:
    """``[-0.010, +0.022]``: the paired 95 % interval of ``here - base``, or why none."""
    from ablate.core.reports.claims import compare

    if base is None or here is None:
        return _NO_CI.format(why=_NO_SAMPLES)
    try:
        r = compare(base, here)
    except ValueError as exc:  # the two evaluations scored different items
        return _NO_CI.format(why=str(exc).split(" (")[0])
    return f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]"


def _score_deltas(
    base: dict[str, float],
    here: dict[str, float],
    headline: bool = False,
    paired: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> list[str]:
    """``<score> +0.031 [-0.010, +0.072] (0.616 -> 0.647)`` for each score that differs by more
    than float rounding, the headline ones (no ``: <part>``) first; ``headline``: those alone.
    ``paired``: the base's and this tree's :func:`_samples`."""
    both = [k for k in here if k in base and abs(here[k] - base[k]) > 1e-9]
    both = [k for k in both if not headline or k.count(":") == 1]
    both.sort(key=lambda k: (k.count(":") > 1, k))
    old, new = paired or ({}, {})
    return [
        f"{k} {here[k] - base[k]:+.3f} {ci_text(old.get(k), new.get(k))} "
        f"({base[k]:.3f} -> {here[k]:.3f})"
        for k in both
    ]


def _claim_changes(base: Path, here: Path, shared: Path | None = None) -> list[str]:
    """``<study>: <claim> <verdict> -> <verdict>`` for each claim whose verdict differs."""
    out = []
    for study in studies.STUDIES:
        mod = studies.side(study, "status")
        if not hasattr(mod, "claims"):
            continue
        old = {r["claim"]: r.get("verdict") for r in mod.claims(base) if "/" not in r["claim"]}
        mine = read_part(mod, "claims", here, shared)
        new = {r["claim"]: r.get("verdict") for r in mine if "/" not in r["claim"]}
        out += [
            f"{study}: {c} {old.get(c) or 'absent'} -> {new.get(c) or 'absent'}"
            for c in sorted(set(old) | set(new), key=str)
            if old.get(c) != new.get(c)
        ]
    return out


def vs_base(
    base: Path, here: Path, shared: Path | None, base_scores: dict[str, float], withheld: str | None
) -> dict[str, list[str]]:
    """A tree's :data:`DELTAS` against the base; ``withheld``: why they are not shown."""
    if withheld:
        return dict(zip(DELTAS, ([withheld], ["withheld (see vs base)"], [withheld]), strict=True))
    own, all_scores = scores(here), scores(here, shared)
    moved = [k for k in all_scores if k in base_scores and all_scores[k] != base_scores[k]]
    paired = (_samples(base, moved), _samples(here, moved, shared))
    return {
        "vs base": _score_deltas(base_scores, own, paired=paired),
        "claims vs base": _claim_changes(base, here, shared),
        "headline vs base": _score_deltas(base_scores, all_scores, headline=True, paired=paired),
    }
