"""Seed 004's claims, computed from the bridge study's results (ablate.core.reports.claims
machinery).

Each claim is a paired test on the same evaluation items. The entry names are the seed's
(:data:`_ENTRIES`); a grid without one of them, or a benchmark not run, makes the claim "not run".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.reports import claims as core_claims
from ablate.core.reports.claims import Claim, ClaimResult, Evidence, Samples, beats, monotone

_STUDY = "bridge"
#: The seed's grid entries each claim reads.
_ENTRIES = {"stable": "1a", "unstable": "1b", "compression": ("2a", "2b", "1a"), "qa": "3a"}


#: Evidence keys of the KV sizes: (key, samples column, label).
_KV_COLUMNS = (("kv", "kv_cache_total_mb", "KV MB (total)"), ("kv_target", "kv_cache_mb", "KV MB"))


def _samples(df: pd.DataFrame, column: str, source: str, label: str) -> Samples:
    values = df.set_index("id")[column].astype(float)
    return Samples(values=values, source=source, label=label)


def _evidence(
    entries: dict[str, dict[str, Any]],
    run_samples: dict[str, str | os.PathLike],
    infer_samples: dict[str, str | os.PathLike],
) -> Evidence:
    """The named inputs: ``final:<entry>``, ``main:`` / ``qa:<baseline>`` and the main
    benchmark's ``kv:`` (source + target) / ``kv_target:<baseline>`` (the target alone)."""
    inputs: dict[str, Any] = {}
    for name, e in entries.items():
        path = run_samples.get(e["run_id"])
        if path is not None and Path(path).exists():
            inputs[f"final:{name}"] = _samples(
                pd.read_parquet(path), "correct", path, f"{name} final"
            )
    for role, prefix in (("entry", "main"), ("qa_entry", "qa")):
        path = infer_samples.get(role)
        if path is None or not Path(path).exists():
            continue
        df = pd.read_parquet(path)
        for baseline, rows in df.groupby("baseline"):
            inputs[f"{prefix}:{baseline}"] = _samples(rows, "correct", path, baseline)
            for key, col, what in _KV_COLUMNS if prefix == "main" else ():
                if col in rows.columns:  # a benchmark of older code lacks a column
                    inputs[f"{key}:{baseline}"] = _samples(rows, col, path, f"{baseline} {what}")
    return Evidence(inputs, params={"entries": entries})


def _both(first, second):
    """Both rules must hold: supported only if both are; not supported if either is not."""

    def rule(ev: Evidence) -> ClaimResult:
        a, b = first(ev), second(ev)
        order = ("not supported", "inconclusive", "supported")
        verdict = min(a.verdict, b.verdict, key=order.index)
        worst = max((a, b), key=lambda r: -1 if r.p_value is None else r.p_value)
        return ClaimResult(
            verdict,
            f"{a.evidence}; {b.evidence}",
            {"first": a.numbers, "second": b.numbers},
            worst.test,
            worst.p_value,
            min((x for x in (a.n, b.n) if x is not None), default=None),
        )

    return rule


def _kv_savings(ev: Evidence) -> ClaimResult:
    """Latent's KV cache per request against the target's, the source's cache counted too."""
    r = beats("kv:target_alone", "kv:latent")(ev)
    n = r.numbers
    saved = n["mean_b"] - n["mean_a"] if n else float("nan")
    target_only = ev["kv_target:latent"].values.mean()
    return ClaimResult(
        r.verdict,
        f"KV cache per request, source + target (MB, from the model configs): target alone "
        f"{n['mean_b']:.4f}, latent {n['mean_a']:.4f} (its target's cache alone "
        f"{target_only:.4f}), saved {saved:.4f}; {r.evidence.split(': ', 1)[-1]}",
        n,
        r.test,
        r.p_value,
        r.n,
    )


def _compression(ev: Evidence) -> ClaimResult:
    entries = ev.params["entries"]
    names = [n for n in _ENTRIES["compression"] if n in entries]
    ks = [entries[n]["K"] for n in names]
    if len(names) < len(_ENTRIES["compression"]) or len(set(ks)) < len(ks):
        missing = [n for n in _ENTRIES["compression"] if n not in entries]
        why = f"grid lacks {', '.join(missing)}" if missing else f"K not distinct: {ks}"
        return ClaimResult("not run", why)
    return monotone([(entries[n]["K"], f"final:{n}") for n in names], increasing=True)(ev)


def _seed_inputs(entries: dict[str, dict[str, Any]]) -> dict[str, dict[int, str]]:
    """``final:<entry>`` of an entry with seeds -> {seed: ``final:<entry>-s<seed>``}."""
    out: dict[str, dict[int, str]] = {}
    for name, e in entries.items():
        if "base" in e:
            out.setdefault(f"final:{e['base']}", {})[e["seed"]] = f"final:{name}"
    return out


def _declared_entries(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each entry with seeds by its declared name, as its first seed (same K, dataset)."""
    out: dict[str, dict[str, Any]] = {}
    for e in sorted(entries.values(), key=lambda e: -e.get("seed", 0)):  # the first seed last
        if "base" in e:
            out[e["base"]] = e
    return out


def _study_claims() -> list[Claim]:
    s, u, qa = _ENTRIES["stable"], _ENTRIES["unstable"], _ENTRIES["qa"]
    return [
        Claim(
            "latent_beats_both",
            "The bridged pair (latent) beats both the source alone and the target alone.",
            _both(
                beats("main:latent", "main:source_alone"), beats("main:latent", "main:target_alone")
            ),
        ),
        Claim(
            "stability_fixes_work",
            f"With the stability fixes ({s}) the final accuracy beats the run without them ({u}).",
            beats(f"final:{s}", f"final:{u}"),
        ),
        Claim(
            "compression_tradeoff",
            "Fewer soft tokens cost accuracy: final accuracy rises with K ("
            + " < ".join(_ENTRIES["compression"])
            + ").",
            _compression,
        ),
        Claim(
            "generalises_beyond_math",
            f"On multi-hop QA ({qa}) the latent bridge beats the target fed the text prompt.",
            beats("qa:latent", "qa:target_alone"),
        ),
        Claim(
            "soft_beats_text",
            "Soft tokens beat text transfer: latent beats the cascade (source's answer as text).",
            beats("main:latent", "main:cascade"),
        ),
        Claim(
            "kv_savings",
            "Latent needs a smaller KV cache per request (source + target) than the target fed "
            "the full prompt.",
            _kv_savings,
        ),
    ]


#: Under the claims table of a study on the embedded pair (``write(..., embedded=True)``).
EMBEDDED_NOTE = """
**The embedded models show the plumbing, not the seed's claims.** Source and target are two tiny
LMs pretrained here for a minute on a small generated world (docs/bridge.md). The run checks that
every step of the study works end to end: the data, the frozen-state caches, training with early
stopping and restore-best, the gold-leak guard, the five-baseline benchmark, the paired tests. A
translator between models this small learns little: the latent answer is expected far below the
target alone, and most claims not supported or inconclusive. Whether the bridge works is a
question for the real models (`config/latentwire.yaml`, docs/bridge.md).
"""


def write(
    entries, run_samples, infer_samples, csv, md, html=None, tex=None, embedded=False
) -> pd.DataFrame:
    """Evaluate the claims and write their tables (``embedded``: with the embedded pair's note)."""
    ev = _evidence(entries, run_samples, infer_samples)
    seeds = _seed_inputs(entries)
    if seeds:  # a grid entry with seeds: its claims pooled and per seed
        ev.params["entries"] = {**_declared_entries(entries), **entries}
        labels = {k: f"{k.split(':', 1)[1]} final" for k in seeds}  # as _evidence() names them
        df = core_claims.evaluate_seeded(_study_claims(), ev, seeds, _STUDY, labels)
    else:
        df = core_claims.evaluate_claims(_study_claims(), ev, study=_STUDY)
    core_claims.write_claims(df, csv, md, html, note=EMBEDDED_NOTE if embedded else "", tex=tex)
    print(df[["claim", "verdict", "p_value", "n"]].to_string(index=False), flush=True)
    return df
