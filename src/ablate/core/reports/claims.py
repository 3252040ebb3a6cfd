"""A study's claims, computed from its results: one module, both studies.

A :class:`Claim` is an id, a statement and an evidence rule (a function of an :class:`Evidence`,
the study's named inputs, returning a :class:`ClaimResult`). An input that does not exist yet makes
the claim "not run", never a crash. The verdicts and the table's columns: docs/claims.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.outputs import io
from ablate.core.reports import stats

VERDICTS = ("supported", "not supported", "inconclusive", "not run")
#: Column order of a claims table: the contract with the report.
COLUMNS = ["study", "claim", "statement", "verdict", "evidence", "test", "p_value", "n", "inputs"]
#: Below this many paired items a verdict is inconclusive whatever the test says.
_MIN_N = 20


class _MissingInput(LookupError):
    """An input a claim needs does not exist (yet): the claim is "not run"."""


@dataclass(frozen=True)
class Samples:
    """Per-item values of one evaluation by item id (a (task, item) MultiIndex for a macro)."""

    values: pd.Series
    source: str
    label: str

    @property
    def strata(self) -> list | None:
        idx = self.values.index
        return list(idx.get_level_values(0)) if isinstance(idx, pd.MultiIndex) else None


@dataclass(frozen=True)
class ClaimResult:
    verdict: str
    evidence: str
    numbers: dict[str, Any] = field(default_factory=dict)
    test: str = ""
    p_value: float | None = None
    n: int | None = None
    inputs: tuple[str, ...] = ()

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")


class Evidence:
    """The named inputs of a study's claims; one absent or None raises :class:`_MissingInput`."""

    def __init__(self, inputs: Mapping[str, Any], params: Mapping[str, Any] | None = None):
        self._inputs = dict(inputs)
        self.params = dict(params or {})
        self.used: list[str] = []

    def __getitem__(self, name: str) -> Any:
        value = self._inputs.get(name)
        if value is None:
            raise _MissingInput(name)
        source = getattr(value, "source", None)
        if source is not None and source not in self.used:
            self.used.append(str(source))
        return value

    def __contains__(self, name: str) -> bool:
        return self._inputs.get(name) is not None


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    evaluate: Callable[[Evidence], ClaimResult]


def evaluate_claims(
    claims: Iterable[Claim], context: Evidence | Mapping[str, Any], study: str = ""
) -> pd.DataFrame:
    """One row per claim (:data:`COLUMNS`). ``context``: an :class:`Evidence` or its mapping."""
    rows = []
    for claim in claims:
        ev = context if isinstance(context, Evidence) else Evidence(context)
        ev.used = []
        try:
            r = claim.evaluate(ev)
        except _MissingInput as exc:
            r = ClaimResult("not run", f"missing input: {exc.args[0]}", inputs=tuple(ev.used))
        inputs = "; ".join(r.inputs or ev.used)
        row = [study, claim.id, claim.statement, r.verdict, r.evidence, r.test, r.p_value, r.n]
        rows.append([*row, inputs])
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["p_value"] = df["p_value"].astype("float64")
    df["n"] = df["n"].astype("Int64")
    return df


def write_claims(
    df: pd.DataFrame,
    csv: str | Path,
    md: str | Path | None = None,
    html: str | Path | None = None,
    note: str = "",
    tex: str | Path | None = None,
) -> None:
    """The table as CSV and, optionally, Markdown, HTML (the Snakemake report's viewer opens HTML
    but offers CSV or Markdown only as a download) and LaTeX; ``note`` (Markdown) goes under the
    Markdown and the HTML."""
    io.write_frame(csv, df)
    if md is not None:
        io.write_text(md, to_markdown(df) + note)
    if html is not None:
        io.write_text(html, to_html(df, note))
    if tex is not None:
        io.write_text(tex, to_latex(df, str(csv)))


_LATEX_COLUMNS = {"claim": "Claim", "verdict": "Verdict", "evidence": "Evidence", "p_value": "p"}


def to_latex(df: pd.DataFrame, source: str) -> str:
    """The claims as a booktabs table, each row's inputs named in a comment above it."""
    from ablate.core.reports.latex import booktabs

    rows = _cells(df)
    cells = pd.DataFrame(rows, columns=_SHOWN)[list(_LATEX_COLUMNS)].rename(columns=_LATEX_COLUMNS)
    inputs = [f"{r['claim']} <- {r['inputs'] or 'no input'}" for r in rows]
    return booktabs(cells, source, inputs, column_format="llp{0.55\\linewidth}r")


#: The columns a person reads (``study`` is the title).
_SHOWN = [c for c in COLUMNS if c != "study"]
#: Under every printed table: how to read the sign of ``diff``.
_SIGN_NOTE = (
    "Each evidence line reads `A a - B b: diff`, A minus B, where A is the side the claim says is "
    "higher: a positive diff points the way the claim says (docs/claims.md)."
)


def verdict_text(verdict: str, test: str | None) -> str:
    """A verdict as a person reads it: a non-inferiority claim's says its margin."""
    margin = stats.noninferiority_margin(test)
    if margin is None or verdict == "not run":
        return verdict
    return f"{verdict} (claim: at most {margin:g} below)"


def _cells(df: pd.DataFrame) -> list[dict[str, str]]:
    """The table as text: empty cells for missing values, p-values as :func:`stats.fmt_p` prints."""

    def cell(r: pd.Series, c: str) -> str:
        v = r[c]
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return ""
        if c == "p_value":
            return stats.fmt_p(v, stats.p_floor(r["test"]))
        if c == "verdict":
            return verdict_text(str(v), r["test"] if isinstance(r["test"], str) else None)
        return str(v)

    return [{c: cell(r, c) for c in _SHOWN} for _, r in df.iterrows()]


def _title(df: pd.DataFrame) -> str:
    return f"Claims: {df['study'].iloc[0]}" if len(df) and df["study"].iloc[0] else "Claims"


def to_markdown(df: pd.DataFrame) -> str:
    def md(v: str) -> str:
        return v.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(_SHOWN) + " |", "|" + "---|" * len(_SHOWN)]
    lines += ["| " + " | ".join(md(r[c]) for c in _SHOWN) + " |" for r in _cells(df)]
    floors = "".join(f"\n{n}\n" for n in _floor_notes(df))
    return f"# {_title(df)}\n\n{_SIGN_NOTE}\n\n" + "\n".join(lines) + "\n" + floors


def _floor_notes(df: pd.DataFrame) -> list[str]:
    """What a printed ``p<...`` means, for the floors this table prints at."""
    pairs = zip(df["p_value"], df["test"])  # floor_notes leaves a NaN out
    return stats.floor_notes([(float(p), str(t)) for p, t in pairs if isinstance(p, (int, float))])


def to_html(df: pd.DataFrame, note: str = "") -> str:
    from ablate.core.reports.status_report import STYLE, html_table, markdown_html

    body = markdown_html(f"# {_title(df)}\n\n{_SIGN_NOTE}")
    floors = markdown_html("\n\n".join(_floor_notes(df))) if _floor_notes(df) else ""
    return (
        f"<html><head><meta charset='utf-8'>{STYLE}</head><body>{body}"
        f"{html_table(_SHOWN, _cells(df))}{floors}{markdown_html(note) if note else ''}"
        "</body></html>\n"
    )


def _pairing(sa: Samples, sb: Samples) -> dict[str, Any]:
    """The item ids of both sides and the strata (tasks) of ``sa``: how two Samples pair."""
    return dict(ids_a=list(sa.values.index), ids_b=list(sb.values.index), strata=sa.strata)


def compare(sa: Samples, sb: Samples, *, alpha: float = 0.05) -> stats.Paired:
    """The paired comparison of ``sa`` with ``sb`` item by item: ValueError where items differ."""
    return stats.paired(sa.values, sb.values, alpha=alpha, **_pairing(sa, sb))


def paired(ev: Evidence, a: str, b: str, *, alpha: float = 0.05) -> stats.Paired:
    """:func:`compare` of evidence ``a`` with ``b``."""
    return compare(ev[a], ev[b], alpha=alpha)


def _result(verdict: str, evidence: str, r: stats.Paired) -> ClaimResult:
    return ClaimResult(verdict, evidence, r.as_dict(), r.test, r.p_value, r.n)


def _verdict(r: stats.Paired, wrong_way: bool, min_n: int) -> str:
    """``wrong_way``: the diff is not the way the claim says."""
    if r.n == 0 or wrong_way:
        return "not supported" if r.n else "inconclusive"
    if r.n < min_n or not r.significant:
        return "inconclusive"
    return "supported"


def beats(winner: str, loser: str, *, alpha: float = 0.05, min_n: int = _MIN_N) -> Callable:
    """Rule for "``winner`` scores higher than ``loser`` on the same items" (paired test)."""

    def rule(ev: Evidence) -> ClaimResult:
        r = paired(ev, loser, winner, alpha=alpha)
        evidence = (
            f"{ev[winner].label} {r.mean_b:.3f} - {ev[loser].label} {r.mean_a:.3f}: {r.line()}"
        )
        return _result(_verdict(r, r.diff <= 0, min_n), evidence, r)

    return rule


def exceeds(
    subject: str,
    threshold: float | Callable[[Evidence], float],
    *,
    alpha: float = 0.05,
    min_n: int = _MIN_N,
) -> Callable:
    """Rule for "``subject`` scores above ``threshold``", a number or function of the evidence."""

    def rule(ev: Evidence) -> ClaimResult:
        s = ev[subject]
        t = threshold(ev) if callable(threshold) else float(threshold)
        r = stats.exceeds(s.values, t, alpha=alpha, strata=s.strata)
        evidence = f"{s.label} {r.mean_b:.3f} vs threshold {t:.3f}: {r.line()}"
        return _result(_verdict(r, r.diff <= 0, min_n), evidence, r)

    return rule


def within_margin(
    subject: str, reference: str, margin: float, *, alpha: float = 0.05, min_n: int = _MIN_N
) -> Callable:
    """Rule for "``subject`` is at most ``margin`` below ``reference``" (non-inferiority)."""

    def rule(ev: Evidence) -> ClaimResult:
        sr, ss = ev[reference], ev[subject]
        r = stats.noninferior(sr.values, ss.values, margin, alpha=alpha, **_pairing(sr, ss))
        evidence = (
            f"{ss.label} {r.mean_b:.3f} - {sr.label} {r.mean_a:.3f} (margin -{margin:g}): "
            f"{r.line()}"
        )
        return _result(_verdict(r, r.diff < -margin, min_n), evidence, r)

    return rule


def monotone(
    points: Sequence[tuple[float, str]],
    *,
    increasing: bool = True,
    alpha: float = 0.05,
    min_n: int = _MIN_N,
) -> Callable:
    """Rule for "the score rises (or falls) with the knob": ``points`` = [(knob, input name)].
    Supported: no step goes the wrong way and the ends differ significantly the claimed way; not
    supported: the ends, or a step significantly, go the wrong way; else inconclusive."""
    pts = sorted(points)
    if len(pts) < 2:
        raise ValueError("a monotone claim needs at least two points")
    sign = 1 if increasing else -1

    def rule(ev: Evidence) -> ClaimResult:
        samples = [(k, ev[name]) for k, name in pts]  # all first: any missing -> not run
        steps = [compare(s0, s1, alpha=alpha) for (_, s0), (_, s1) in zip(samples, samples[1:])]
        ends = compare(samples[0][1], samples[-1][1], alpha=alpha)
        wrong = [s for s in steps if sign * s.diff < 0]
        means = ", ".join(f"{k:g}: {s.mean_a:.3f}" for (k, _), s in zip(samples, steps))
        means += f", {samples[-1][0]:g}: {steps[-1].mean_b:.3f}"
        evidence = f"scores by knob {means}; ends {ends.line()}; steps the wrong way: {len(wrong)}"
        if sign * ends.diff < 0 or any(s.significant for s in wrong):
            verdict = "not supported"
        elif wrong or ends.n < min_n or not ends.significant or ends.diff == 0:
            verdict = "inconclusive"
        else:
            verdict = "supported"
        numbers = dict(ends=ends.as_dict(), steps=[s.as_dict() for s in steps])
        return ClaimResult(verdict, evidence, numbers, ends.test, ends.p_value, ends.n)

    return rule


_SEED_ROW = "{claim}/seed{seed}"


def pool_seeds(samples: Sequence[Samples], label: str | None = None) -> Samples:
    """The seeds of one evaluation as one input: each item's values averaged over the seeds."""
    frame = pd.concat([s.values for s in samples], axis=1)
    if frame.isna().any().any():
        raise ValueError(f"the seeds of {samples[0].label} cover different items")
    return Samples(
        frame.mean(axis=1),
        "; ".join(str(s.source) for s in samples),
        f"{label or samples[0].label} (mean of {len(samples)} seeds)",
    )


def _seed_views(
    ev: Evidence, seeds: Mapping[str, Mapping[int, str]], labels: Mapping[str, str] | None = None
) -> tuple[Evidence, dict[int, Evidence]]:
    """The pooled evidence and one per seed (``seeds``: input name -> {seed: its input})."""
    inputs = dict(ev._inputs)
    pooled = dict(inputs)
    for name, by_seed in seeds.items():
        got = [inputs.get(n) for _, n in sorted(by_seed.items())]
        label = (labels or {}).get(name)
        pooled[name] = pool_seeds(got, label) if all(x is not None for x in got) else None
    every = sorted({s for by_seed in seeds.values() for s in by_seed})
    per_seed = {
        s: Evidence(
            {**inputs, **{name: inputs.get(by.get(s, "")) for name, by in seeds.items()}},
            ev.params,
        )
        for s in every
    }
    return Evidence(pooled, ev.params), per_seed


def evaluate_seeded(
    claims: Iterable[Claim],
    ev: Evidence,
    seeds: Mapping[str, Mapping[int, str]],
    study: str = "",
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """:func:`evaluate_claims` pooled over seeds, then per seed where inputs have seeds."""
    claims = list(claims)
    pooled, per_seed = _seed_views(ev, seeds, labels)
    table = evaluate_claims(claims, pooled, study)
    per = {s: evaluate_claims(claims, e, study) for s, e in per_seed.items()}
    rows = []
    for i, row in table.iterrows():
        mine = {s: t.iloc[i] for s, t in per.items() if t.iloc[i]["inputs"] != row["inputs"]}
        if mine:
            k = sum(r["verdict"] == "supported" for r in mine.values())
            row = row.copy()
            row["evidence"] = f"{row['evidence']}; holds in {k} of {len(mine)} seeds"
        rows.append(row)
        for s, r in mine.items():
            rows.append(r.copy())
            rows[-1]["claim"] = _SEED_ROW.format(claim=row["claim"], seed=s)
            rows[-1]["statement"] = f"{r['statement']} (seed {s})"
    return pd.DataFrame(rows, columns=COLUMNS).astype(table.dtypes.to_dict()).reset_index(drop=True)
