"""Paired comparisons of two evaluations on the same items, shared by both studies.

0/1 data: exact McNemar test and Newcombe's hybrid-score interval (method 10, Newcombe 1998, Stat
Med 17:2635); other scores: a seeded paired bootstrap. Differences within :data:`TOL` of zero are
float rounding (0.20000000000000004 vs 0.19999999999999998), not effects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

TOL = 1e-9
#: Bootstrap resamples (paired and stratified bootstrap) and their fixed seed: reruns are equal.
N_BOOT = 10_000
SEED = 0


@dataclass(frozen=True)
class Paired:
    """One paired comparison; ``diff = mean_b - mean_a``. NaN fields where n = 0."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    significant: bool
    alpha: float = 0.05

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def p_floor(self) -> float:
        return p_floor(self.test)

    def line(self, digits: int = 3) -> str:
        """``diff +0.050 [95% CI +0.010, +0.090], p=0.012 (exact McNemar, n=200)``"""
        if math.isnan(self.diff):
            return f"no comparison ({self.test})"
        level = round(100 * (1 - self.alpha))
        return (
            f"diff {self.diff:+.{digits}f} [{level}% CI {self.ci_low:+.{digits}f}, "
            f"{self.ci_high:+.{digits}f}], {p_text(self.p_value, self.p_floor)} "
            f"({self.test}, n={self.n})"
        )


def p_floor(test: str | None) -> float:
    """The smallest p-value a test can give: 1/(B+1) for a bootstrap of B resamples, else 0."""
    m = re.search(r"bootstrap \((\d+)\)", test or "")
    return 1 / (int(m.group(1)) + 1) if m else 0.0


#: p-values below this print as "<1e-300": a normal tail is a float (:func:`normal_sf`) to
#: z ~ 37 and a subnormal, then an upper bound, past it; a table must not show that as p=0.
_P_PRINT_MIN = 1e-300


def log_normal_sf(z: float) -> float:
    """ln P(Z > z) of a standard normal. From ``math.erfc`` while the tail is a normal float
    (relative error ~1e-13 at z = 37; ``NormalDist().cdf(-z)`` is 0 already at z = 8.5), past it
    the asymptotic series ``ln phi(z) - ln z + ln(1 - 1/z^2 + 3/z^4 - 15/z^6 + 105/z^8)``
    (relative error below 1e-10 for z > 37)."""
    if z < 37.0:
        return math.log(0.5 * math.erfc(z / math.sqrt(2)))
    inv2 = 1.0 / (z * z)
    series = 1.0 + inv2 * (-1.0 + inv2 * (3.0 + inv2 * (-15.0 + inv2 * 105.0)))
    return -0.5 * z * z - 0.5 * math.log(2 * math.pi) - math.log(z) + math.log(series)


def normal_sf(z: float) -> float:
    """P(Z > z) of a standard normal, never 0 (past a float's range, its smallest: a bound)."""
    if z < 37.0:
        return max(0.5 * math.erfc(z / math.sqrt(2)), math.ulp(0.0))
    return max(math.exp(log_normal_sf(z)), math.ulp(0.0))


def fmt_p(p: float, floor: float = 0.0) -> str:
    """A p-value for a table (``0.012``, ``2.3e-05``, ``<0.0001``, ``<1e-300``), never ``0``."""
    if p is None or math.isnan(p):
        return "n/a"
    if floor and p <= floor * (1 + 1e-9):
        return f"<{floor / (1 - floor):.2g}"  # 1/B from 1/(B+1)
    if p < _P_PRINT_MIN:
        return f"<{_P_PRINT_MIN:.0e}"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def floor_notes(rows: Sequence[tuple[float, str]]) -> list[str]:
    """What ``p<...`` means, for each floor a table's ``(p, test)`` pairs print at."""
    shown = [(p, p_floor(t)) for p, t in rows if not math.isnan(p)]
    notes = []
    if any(floor and p <= floor * (1 + 1e-9) for p, floor in shown):
        notes.append(
            "`p<0.0001`: no bootstrap resample was as far out; the CSV keeps p = 1/(B+1) "
            "(B = 10000 resamples)."
        )
    if any(p < _P_PRINT_MIN and not floor for p, floor in shown):
        notes.append(
            "`p<1e-300`: a tail below 1e-300; the CSV keeps it as computed from erfc (past a "
            "float's range, z > 38.5, the smallest float, 5e-324, an upper bound)."
        )
    return notes


def p_text(p: float, floor: float = 0.0) -> str:
    """``p=0.012``, ``p<0.0001``: :func:`fmt_p` with its relation sign."""
    s = fmt_p(p, floor)
    return "p" + s if s.startswith("<") else f"p={s}"


def _is_binary(x: np.ndarray) -> bool:
    return bool(np.isin(x, (0.0, 1.0)).all())


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha / 2)


def clean(d: float) -> float:
    """``d``, or exactly 0 when it is float rounding (|d| <= :data:`TOL`)."""
    return 0.0 if abs(d) <= TOL else float(d)


def _align(a, b, ids_a, ids_b) -> tuple[np.ndarray, np.ndarray]:
    """a and b in one item order, matched by id if given (no item one side lacks dropped)."""
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if (ids_a is None) != (ids_b is None):
        raise ValueError("give ids for both sides or for neither")
    if ids_a is None:
        if len(a) != len(b):
            raise ValueError(f"unpaired lengths: {len(a)} vs {len(b)} items (pass ids to align)")
        return a, b
    ids_a, ids_b = list(ids_a), list(ids_b)
    if len(ids_a) != len(a) or len(ids_b) != len(b):
        raise ValueError("ids and values differ in length")
    pos_a = {k: i for i, k in enumerate(ids_a)}
    pos_b = {k: i for i, k in enumerate(ids_b)}
    for name, ids, pos in (("a", ids_a, pos_a), ("b", ids_b, pos_b)):
        if len(pos) != len(ids):
            raise ValueError(f"duplicate item ids on side {name}")
    if pos_a.keys() != pos_b.keys():
        only_a, only_b = pos_a.keys() - pos_b.keys(), pos_b.keys() - pos_a.keys()
        raise ValueError(
            f"the two evaluations cover different items ({len(only_a)} only in a, "
            f"{len(only_b)} only in b, e.g. {sorted(map(str, only_a | only_b))[:3]})"
        )
    return a, b[[pos_b[k] for k in ids_a]]


def _binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p-value at p = 1/2 (the McNemar test on n discordant pairs)."""
    if n == 0:
        return 1.0
    try:
        from scipy.stats import binomtest
    except ImportError:  # scipy is optional: the same number from the binomial tail
        tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2**n
        return min(1.0, 2 * tail)
    return float(binomtest(k, n, 0.5).pvalue)


def _binom_greater(k: int, n: int, p0: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p0): the exact one-sided p of "the proportion is above p0"."""
    if p0 >= 1 or k <= 0:
        return 1.0
    if p0 <= 0:
        return 0.0
    try:
        from scipy.stats import binomtest
    except ImportError:  # scipy is optional: the same tail in logs (no overflow at large n)
        lp, lq = math.log(p0), math.log1p(-p0)
        lc = math.lgamma(n + 1)
        terms = (
            lc - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
            for i in range(k, n + 1)
        )
        return min(1.0, sum(math.exp(t) for t in terms))
    return float(binomtest(k, n, p0, alternative="greater").pvalue)


def wilson(successes: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    z = _z(alpha)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # exact ends at 0 and n successes (the formula leaves float dust there)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    return lo, 1.0 if successes == n else min(1.0, centre + half)


def _phi_star(a: int, b: int, c: int, d: int) -> float:
    """Newcombe's corrected correlation phi* of the 2x2 table (a, b / c, d) (method 10): a
    positive ad - bc is reduced by n/2, so two evaluations that mostly agree do not get an
    interval narrowed to a point."""
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if not margins:
        return 0.0
    num = a * d - b * c
    if num > 0:
        num = max(num - (a + b + c + d) / 2, 0.0)
    return num / math.sqrt(margins)


def _mcnemar(a: np.ndarray, b: np.ndarray, alpha: float) -> Paired:
    n = len(a)
    both = int(((a == 1) & (b == 1)).sum())
    only_a = int(((a == 1) & (b == 0)).sum())  # a right, b wrong
    only_b = int(((a == 0) & (b == 1)).sum())
    neither = n - both - only_a - only_b
    p = _binom_two_sided(only_b, only_a + only_b)
    # Newcombe's hybrid score interval for theta = mean_b - mean_a
    p1, p2 = (both + only_b) / n, (both + only_a) / n
    l1, u1 = wilson(both + only_b, n, alpha)
    l2, u2 = wilson(both + only_a, n, alpha)
    phi = _phi_star(both, only_b, only_a, neither)
    theta = clean(p1 - p2)
    lo = theta - math.sqrt(
        max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    )
    hi = theta + math.sqrt(
        max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    )
    return Paired(n, p2, p1, theta, lo, hi, p, "exact McNemar", p < alpha, alpha)


def _stratum_index(strata, n: int) -> list[np.ndarray]:
    """The item positions of each stratum, in first-seen order."""
    if strata is None:
        return [np.arange(n)]
    labels = np.asarray(list(strata), dtype=object)
    if len(labels) != n:
        raise ValueError(f"strata has {len(labels)} labels for {n} items")
    return [np.flatnonzero(labels == s) for s in dict.fromkeys(labels.tolist())]


def _bootstrap(a, b, groups, alpha, n_boot, seed) -> Paired:
    """Paired bootstrap of the (macro-)mean difference, resampling items within each stratum.
    CI: percentiles; p: share of resampled differences, centred on the observed one, at least
    as far from zero as the observed difference (two-sided)."""
    d = b - a
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    for idx in groups:
        for start in range(0, n_boot, 1000):  # blocks of resamples: bounded memory
            rows = min(1000, n_boot - start)
            pick = rng.integers(0, len(idx), size=(rows, len(idx)))
            boot[start : start + rows] += d[idx][pick].mean(axis=1)
    boot /= len(groups)
    obs = clean(float(np.mean([d[i].mean() for i in groups])))
    floor = 1 / (n_boot + 1)  # no resample as far out: the smallest p, never 0
    if np.ptp(boot) <= TOL:  # every pair equal (or constant difference): no spread to test
        p = 1.0 if obs == 0 else floor
        lo = hi = obs
    else:
        lo, hi = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
        p = float((1 + np.sum(np.abs(boot - obs) >= abs(obs) - TOL)) / (n_boot + 1))
    mean_a = float(np.mean([a[i].mean() for i in groups]))
    mean_b = float(np.mean([b[i].mean() for i in groups]))
    name = "paired bootstrap" if len(groups) == 1 else "stratified paired bootstrap"
    test = f"{name} ({n_boot})"
    return Paired(len(a), mean_a, mean_b, obs, lo, hi, p, test, p < alpha, alpha)


def _empty(alpha: float) -> Paired:
    nan = math.nan
    return Paired(0, nan, nan, nan, nan, nan, nan, "no items", False, alpha)


def paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    ids_a: Sequence[Hashable] | None = None,
    ids_b: Sequence[Hashable] | None = None,
    alpha: float = 0.05,
    strata: Sequence[Hashable] | None = None,
    seed: int = SEED,
) -> Paired:
    """Compare b with a on the same items (``diff = mean_b - mean_a``). ``strata`` (aligned with
    ``a``, or ``ids_a``) makes the means macros over strata: with 0/1 values and equal-sized
    strata that is the pooled mean and McNemar applies; otherwise a bootstrap within strata."""
    a, b = _align(a, b, ids_a, ids_b)
    if len(a) == 0:
        return _empty(alpha)
    groups = _stratum_index(strata, len(a))
    sizes = {len(g) for g in groups}
    if _is_binary(a) and _is_binary(b) and len(sizes) == 1:
        return _mcnemar(a, b, alpha)
    return _bootstrap(a, b, groups, alpha, N_BOOT, seed)


#: the test name of :func:`noninferior`; :func:`noninferiority_margin` reads its margin back
_NONINFERIOR_TEST = "non-inferiority z (margin {margin:g}, one-sided)"
_NONINFERIOR_READ = re.compile(r"^non-inferiority z \(margin ([^,]+), one-sided\)$")


def noninferiority_margin(test: str | None) -> float | None:
    """The margin of a non-inferiority test's name (:data:`_NONINFERIOR_TEST`), else None."""
    m = _NONINFERIOR_READ.match(test or "")
    return float(m.group(1)) if m else None


def _one_sided(x: np.ndarray, groups: list[np.ndarray], gap: float) -> tuple[float, float]:
    """The standard error of the (macro-)mean of ``x`` and the one-sided z p of ``gap``."""
    var = sum(x[g].var(ddof=1) / len(g) if len(g) > 1 else 0.0 for g in groups) / len(groups) ** 2
    se = math.sqrt(var)
    if se <= TOL:
        return se, 0.0 if gap > TOL else 1.0
    return se, normal_sf(gap / se)


def noninferior(
    a: Sequence[float],
    b: Sequence[float],
    margin: float,
    *,
    ids_a: Sequence[Hashable] | None = None,
    ids_b: Sequence[Hashable] | None = None,
    alpha: float = 0.05,
    strata: Sequence[Hashable] | None = None,
) -> Paired:
    """Is b at most ``margin`` below a? One-sided z test of H0: mean(b - a) <= -margin."""
    base = paired(a, b, ids_a=ids_a, ids_b=ids_b, alpha=alpha, strata=strata)
    if base.n == 0:
        return base
    a, b = _align(a, b, ids_a, ids_b)
    _, p = _one_sided(b - a, _stratum_index(strata, len(a)), base.diff + margin)
    test = _NONINFERIOR_TEST.format(margin=margin)
    return Paired(**{**base.as_dict(), "p_value": p, "test": test, "significant": p < alpha})


def exceeds(
    x: Sequence[float],
    threshold: float,
    *,
    alpha: float = 0.05,
    strata: Sequence[Hashable] | None = None,
) -> Paired:
    """Is the mean of ``x`` above ``threshold``? Reported as a comparison with it (``mean_a``):
    0/1 values in equal-sized strata, an exact one-sided binomial test and Wilson interval;
    otherwise a one-sided z test (``strata`` as in :func:`paired`)."""
    x = np.asarray(x, dtype=float).ravel()
    if len(x) == 0:
        return _empty(alpha)
    groups = _stratum_index(strata, len(x))
    if _is_binary(x) and len({len(g) for g in groups}) == 1:
        return _exceeds_binomial(x, threshold, alpha)
    mean = float(np.mean([x[g].mean() for g in groups]))
    gap = clean(mean - threshold)
    se, p = _one_sided(x, groups, gap)
    z = _z(alpha)
    test = f"one-sided z vs {threshold:.3g}"
    return Paired(
        len(x), threshold, mean, gap, gap - z * se, gap + z * se, p, test, p < alpha, alpha
    )


def _exceeds_binomial(x: np.ndarray, threshold: float, alpha: float) -> Paired:
    """:func:`exceeds` on 0/1 values: unlike the z test, it does not collapse at a perfect (or
    zero) score (it printed "CI +0.650, +0.650", p=0)."""
    n, k = len(x), int(x.sum())
    lo, hi = wilson(k, n, alpha)
    p = _binom_greater(k, n, threshold)
    gap = clean(k / n - threshold)
    test = f"exact binomial vs {threshold:.3g} (one-sided)"
    t = threshold
    return Paired(n, t, k / n, gap, lo - t, hi - t, p, test, p < alpha, alpha)


def from_stderr(
    mean_a: float, se_a: float, mean_b: float, se_b: float, *, n: int = 0, alpha: float = 0.05
) -> Paired:
    """An unpaired z test of two means from their stderrs (conservative on the same items)."""
    diff = clean(mean_b - mean_a)
    se = math.hypot(se_a, se_b) if se_a is not None and se_b is not None else math.nan
    if math.isnan(se) or math.isnan(diff):
        return Paired(n, mean_a, mean_b, diff, math.nan, math.nan, math.nan, "none", False, alpha)
    if se <= TOL:
        p = 1.0 if diff == 0 else 0.0
    else:
        p = min(1.0, 2 * normal_sf(abs(diff) / se))
    z = _z(alpha)
    test = "unpaired z from stderrs"
    return Paired(n, mean_a, mean_b, diff, diff - z * se, diff + z * se, p, test, p < alpha, alpha)


def mean_ci(x: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, low, high): Wilson interval for 0/1 data, a t interval otherwise; NaNs for no data."""
    x = np.asarray(x, dtype=float).ravel()
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if _is_binary(x):
        lo, hi = wilson(float(x.sum()), n, alpha)
        return m, lo, hi
    if n == 1:
        return m, math.nan, math.nan
    try:
        from scipy.stats import t

        q = float(t.ppf(1 - alpha / 2, n - 1))
    except ImportError:
        q = _z(alpha)
    half = q * float(x.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half
