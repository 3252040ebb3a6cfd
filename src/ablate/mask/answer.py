"""The mask study's answer to its question, in one sentence with the numbers.

Each finetune's share of the ablation's drop, read back from the recovery claims' evidence
(:func:`share_text`). No pandas, no torch: the terminal's summary and ``ablate status`` read it."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from ablate.core.reports import stats

#: the claim roles with a recovery claim, the study's question (prefix-LM) first
RECOVERY_ROLES = ("prefix", "causal", "long")
#: how a recovery claim's evidence says there is no share of the drop
_NOTHING = "nothing to win back"
NO_DROP = "the ablation did not lower the macro (diff {drop:+.3f}): " + _NOTHING
#: :func:`share_text` read back: the variant and its share
_SHARE_READ = re.compile(r"; (\S+) wins back ([+-]\d+\.\d+) of the drop of ")


def claim_id(role: str) -> str:
    """The recovery claim of a role: ``prefix_recovers``."""
    return f"{role}_recovers"


def share_text(name: str, share: float, drop: float, low: float, high: float, alpha: float) -> str:
    """The end of a recovery claim's evidence: ``name``'s share of the drop, with its interval."""
    level = round(100 * (1 - alpha))
    return f"{name} wins back {share:+.4f} of the drop of {drop:.3f} [{level}% CI {low:+.3f}, {high:+.3f}]"


def _read_share(evidence: str | None) -> tuple[str, float] | None:
    """(variant, share) from a recovery claim's evidence; None where it states no share."""
    m = _SHARE_READ.search(evidence or "")
    return (m.group(1), float(m.group(2))) if m else None


def percent(share: float, signed: bool = False) -> str:
    """A share as the sentence prints it: ``61 %``, ``-18 %``, below 10 % one decimal."""
    v = 100 * share
    return f"{v:{'+' if signed else ''}.{0 if abs(v) >= 10 else 1}f} %"


def _p(row: Mapping[str, str]) -> str:
    try:
        p = float(row.get("p_value") or "nan")
    except ValueError:
        p = math.nan
    return stats.p_text(p, stats.p_floor(row.get("test")))


def answer(rows: Iterable[Mapping[str, str]]) -> str | None:
    """The study's answer from its claims table's rows (as read from the CSV), e.g. "3B wins back
    61 % of the ablation's drop (p=2.9e-12), 3A -18 %, 5B 70 %."; None without the prefix-LM's."""
    by_id = {r["claim"]: r for r in rows}
    lead = by_id.get(claim_id(RECOVERY_ROLES[0]))
    if lead is None or lead.get("verdict") in (None, "not run"):
        return None
    got = _read_share(lead.get("evidence"))
    if got is None:
        if _NOTHING not in (lead.get("evidence") or ""):
            return None
        return "The ablation did not lower the macro score: no finetune has a drop to win back."
    name, share = got
    if lead["verdict"] == "supported":
        said = f"{name} wins back {percent(share)} of the ablation's drop ({_p(lead)})"
    else:
        said = f"{name} wins back no significant share of the drop ({percent(share, True)}, {_p(lead)})"
    for role in RECOVERY_ROLES[1:]:
        if other := _read_share(by_id.get(claim_id(role), {}).get("evidence")):
            said += f", {other[0]} {percent(other[1])}"
    return said + "."
