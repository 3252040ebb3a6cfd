"""Seeds as a study dimension, as STATUS.md reads them: the spread of a number over the seeds of
each seeded variant or grid entry, and a claim's "holds in k of n seeds"
(:func:`ablate.core.reports.claims.evaluate_seeded` writes it into the pooled row's evidence)."""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The end of a pooled claim row's evidence.
_HOLDS = re.compile(r"holds in \d+ of \d+ seeds$")


def seed_name(name: str, seed: int) -> str:
    """The name of a study's entry (a mask variant, a bridge grid entry) trained with ``seed``."""
    return f"{name}-s{seed}"


def spread_lines(rows: Iterable[dict[str, str]], group: tuple[str, ...], value: str, what: str):
    """One line per group of the seeded rows: mean and range of ``value`` over the seeds."""
    groups: dict[tuple[str, ...], list[float]] = {}
    for r in rows:
        if r.get("seed"):
            groups.setdefault(tuple(r[g] for g in group), []).append(float(r[value]))
    return [
        f"- {' under '.join(k)} over {len(x)} seeds: {what} mean {sum(x) / len(x):.3f}, "
        f"range {min(x):.3f} to {max(x):.3f}"
        for k, x in sorted(groups.items())
    ]


def verdict_line(claim: dict[str, str]) -> str:
    """A claims table row as STATUS.md lists it, with its ``holds in k of n seeds``."""
    from ablate.core.reports.claims import verdict_text

    holds = _HOLDS.search(claim.get("evidence") or "")
    verdict = verdict_text(claim["verdict"], claim.get("test"))
    return f"- claim `{claim['claim']}`: **{verdict}**" + (f" ({holds.group(0)})" if holds else "")
