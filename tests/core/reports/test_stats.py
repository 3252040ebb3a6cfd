"""ablate.core.reports.stats: paired tests, intervals, edge cases (synthetic data, no model)."""

from __future__ import annotations

import builtins
import math

import numpy as np
import pytest

from ablate.core.reports import stats


def table(both, only_b, only_a, neither):
    """Paired 0/1 vectors with these cell counts (b right & a wrong = only_b, ...)."""
    a = [1] * both + [0] * only_b + [1] * only_a + [0] * neither
    b = [1] * both + [1] * only_b + [0] * only_a + [0] * neither
    return np.array(a, float), np.array(b, float)


def test_mcnemar_exact_p_and_newcombe_interval():
    # Newcombe (1998), Stat Med 17:2635, example (a): 36 / 12 / 2 / 0, method 10
    a, b = table(36, 12, 2, 0)
    r = stats.paired(a, b)
    assert r.test == "exact McNemar" and r.n == 50
    assert r.mean_a == pytest.approx(0.76) and r.mean_b == pytest.approx(0.96)
    assert r.diff == pytest.approx(0.2)
    assert (r.ci_low, r.ci_high) == pytest.approx((0.0569, 0.3404), abs=1e-4)
    # two-sided binomial on the 14 discordant pairs, 2 of them one way
    assert r.p_value == pytest.approx(2 * sum(math.comb(14, i) for i in range(3)) / 2**14)
    assert r.significant
    assert "exact McNemar, n=50" in r.line()


def test_newcombe_method_10_uses_the_corrected_phi():
    # Newcombe (1998), Stat Med 17:2635, (a, b, c, d) = (20, 12, 2, 16): method 10 (phi*)
    # gives (0.0562, 0.3292); method 8 (plain phi) would give (0.0618, 0.3242)
    a, b = table(20, 12, 2, 16)
    r = stats.paired(a, b)
    assert r.diff == pytest.approx(0.2)
    assert (r.ci_low, r.ci_high) == pytest.approx((0.0562, 0.3292), abs=1e-4)


def test_identical_evaluations_at_half_get_an_interval_not_a_point():
    x = np.array([1.0] * 25 + [0.0] * 25)
    r = stats.paired(x, x)
    assert r.diff == 0 and r.p_value == 1.0
    assert r.ci_low < -0.01 and r.ci_high > 0.01  # method 8's phi = 1 gave [0, 0]
    assert r.ci_low == pytest.approx(-r.ci_high)


def test_bootstrap_p_is_never_zero(monkeypatch):
    a = np.linspace(0.1, 0.8, 40)
    floor = 1 / (stats.N_BOOT + 1)
    for b in (a + 0.1, a + 0.3 + 0.01 * np.sin(np.arange(40))):  # constant and spread diff
        r = stats.paired(a, b)
        assert r.test == f"paired bootstrap ({stats.N_BOOT})" and r.significant
        assert r.p_value == pytest.approx(floor) and r.p_floor == pytest.approx(floor)
        assert "p<0.0001 (paired bootstrap" in r.line()  # below 1/B, not p=0
    monkeypatch.setattr(stats, "N_BOOT", 999)  # fewer resamples: a higher floor
    assert stats.paired(a, a + 0.1).line().count("p<0.001 ") == 1


def test_printed_p_is_never_zero():
    assert stats.fmt_p(0.0) == "<1e-300" and stats.p_text(0.0) == "p<1e-300"
    assert stats.fmt_p(2.34e-5) == "2.3e-05" and stats.p_text(0.0123) == "p=0.012"
    assert stats.p_floor("exact McNemar") == 0.0


def hide_scipy(monkeypatch):
    """From here on in the test, ``import scipy...`` fails (scipy is optional)."""
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)


def test_mcnemar_without_scipy_gives_the_same_p(monkeypatch):
    a, b = table(30, 9, 3, 8)
    with_scipy = stats.paired(a, b).p_value
    hide_scipy(monkeypatch)
    assert stats.paired(a, b).p_value == pytest.approx(with_scipy, rel=1e-12)


def test_direction_is_b_minus_a():
    a, b = table(10, 0, 15, 5)
    r = stats.paired(a, b)
    assert r.diff == pytest.approx(-0.5) and r.ci_high < 0 and r.significant


def test_alignment_by_ids():
    a, b = table(20, 8, 1, 11)
    ids = list(range(len(a)))
    perm = np.random.default_rng(1).permutation(len(a))
    shuffled = stats.paired(a, b[perm], ids_a=ids, ids_b=[ids[i] for i in perm])
    assert shuffled == stats.paired(a, b)
    # misaligned without ids: not the same comparison
    assert stats.paired(a, b[perm]).p_value != shuffled.p_value
    with pytest.raises(ValueError, match="different items"):
        stats.paired(a, b, ids_a=ids, ids_b=[i + 1 for i in ids])
    with pytest.raises(ValueError, match="duplicate item ids"):
        stats.paired(a, b, ids_a=[0] * len(a), ids_b=ids)
    with pytest.raises(ValueError, match="unpaired lengths"):
        stats.paired(a, b[:-1])


def test_no_items_and_all_equal_pairs():
    r = stats.paired([], [])
    assert r.n == 0 and math.isnan(r.diff) and math.isnan(r.p_value) and not r.significant
    assert stats.mean_ci([]) == (pytest.approx(math.nan, nan_ok=True),) * 3
    x = np.array([1, 0, 1, 1, 0] * 8, float)
    same = stats.paired(x, x)
    assert same.diff == 0 and same.p_value == 1.0 and not same.significant
    assert same.ci_low < 0 < same.ci_high  # 40 items say little: the interval is not a point
    scores = np.linspace(0.1, 0.9, 40)
    same = stats.paired(scores, scores)
    assert (same.diff, same.p_value, same.ci_low, same.ci_high) == (0, 1.0, 0, 0)


def test_float_rounding_is_no_difference():
    # the macros: 0.20000000000000004 vs 0.19999999999999998
    r = stats.from_stderr(0.1 + 0.1 + 0.1 - 0.1, 0.03, 0.2 - 1e-17 * 2, 0.03)
    assert r.diff == 0.0 and r.p_value == 1.0 and not r.significant
    a = np.array([0.1 + 0.2, 0.7, 0.4] * 10)
    b = np.array([0.3, 0.7, 0.4] * 10)  # 0.1 + 0.2 = 0.30000000000000004
    r = stats.paired(a, b)
    assert r.diff == 0.0 and r.p_value == 1.0 and not r.significant


def test_bootstrap_for_scores_is_seeded():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 300)
    b = a + 0.02 + rng.normal(0, 0.05, 300)
    r = stats.paired(a, b)
    assert r.test.startswith("paired bootstrap") and r.significant
    assert r.ci_low < r.diff < r.ci_high and r.diff == pytest.approx(np.mean(b - a))
    assert stats.paired(a, b) == r  # same seed, same numbers
    noise = stats.paired(a, a + rng.normal(0, 0.05, 300))
    assert not noise.significant and noise.ci_low < 0 < noise.ci_high


def test_strata_make_a_macro():
    # equal-sized strata of 0/1 items: the macro is the pooled mean, McNemar as is
    a1, b1 = table(20, 15, 0, 5)
    a2, b2 = table(10, 0, 0, 30)
    strata = ["t1"] * 40 + ["t2"] * 40
    r = stats.paired(np.r_[a1, a2], np.r_[b1, b2], strata=strata)
    assert r.test == "exact McNemar" and r.diff == pytest.approx((15 / 40 + 0) / 2)
    # unequal sizes: the unweighted mean over strata, by a stratified bootstrap
    a3, b3 = table(5, 0, 0, 5)
    r = stats.paired(np.r_[a1, a3], np.r_[b1, b3], strata=["t1"] * 40 + ["t3"] * 10)
    assert r.test.startswith("stratified paired bootstrap")
    assert r.diff == pytest.approx((15 / 40 + 0) / 2)
    assert r.mean_a == pytest.approx((20 / 40 + 5 / 10) / 2)
    assert r.significant


def test_noninferiority():
    a, b = table(150, 5, 8, 37)  # b 0.015 below a on 200 items
    assert stats.noninferior(a, b, 0.05).significant  # within 0.05: yes
    r = stats.noninferior(a, b, 0.0)
    assert not r.significant and "margin 0" in r.test  # within 0: no
    a, b = table(100, 0, 40, 60)  # b 0.2 below
    assert not stats.noninferior(a, b, 0.05).significant


def test_mean_ci():
    m, lo, hi = stats.mean_ci([1] * 8 + [0] * 2)
    assert m == 0.8 and (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # Wilson
    m, lo, hi = stats.mean_ci([0.2, 0.4, 0.6])
    assert m == pytest.approx(0.4) and lo < 0.4 < hi
    assert stats.mean_ci([0] * 5)[1] == 0.0  # Wilson stays inside [0, 1]


def test_exceeds_on_a_perfect_score_is_not_degenerate(monkeypatch):
    # a task at 200/200 against chance + margin 0.35: the z test's spread is 0 there, which
    # printed "CI +0.650, +0.650", p=0; exact binomial + Wilson say how sure 200 items make us
    r = stats.exceeds(np.ones(200), 0.35)
    assert r.test == "exact binomial vs 0.35 (one-sided)" and r.significant
    assert r.diff == pytest.approx(0.65) and r.ci_high == pytest.approx(0.65)
    assert r.ci_low == pytest.approx(stats.wilson(200, 200)[0] - 0.35) and r.ci_low < 0.64
    assert r.p_value == pytest.approx(0.35**200, rel=1e-9) and r.p_value > 0
    assert ", p=6.5e-92 (exact binomial" in r.line()
    x = np.array([1.0] * 147 + [0.0] * 53)
    with_scipy = stats.exceeds(x, 0.6)
    hide_scipy(monkeypatch)
    assert stats.exceeds(x, 0.6).p_value == pytest.approx(with_scipy.p_value, rel=1e-9)
    assert 1e-5 < with_scipy.p_value < 1e-3


# P(Z > z) and its natural log, from mpmath (dps=40): mpmath.ncdf(-z), mpmath.log of it
NORMAL_TAILS = [
    (8.5, 9.4795348222033184e-18, -39.197396428217669),
    (18.5, 1.032369868956329e-76, -174.96461006454661),
    (40.0, None, -804.60844201375379),  # 3.6558935409150297e-350: below the smallest float
]


@pytest.mark.parametrize(("z", "tail", "log_tail"), NORMAL_TAILS)
def test_normal_tails_match_a_reference_far_out(z, tail, log_tail):
    assert stats.log_normal_sf(z) == pytest.approx(log_tail, rel=1e-12)
    p = stats.normal_sf(z)
    assert p > 0  # NormalDist().cdf(-z) gave 0.0 from z = 8.5
    if tail is not None:
        assert p == pytest.approx(tail, rel=1e-12, abs=0)
    else:  # an upper bound, printed as the floor
        assert p == 5e-324 and stats.p_text(p) == "p<1e-300"


def test_z_tests_give_the_true_tail_not_zero():
    # a pooled claim at z = 18.5 stored p = 0.0 and printed "p<1e-300"
    x = np.tile([1.0, 0.0], 5000) + 0.25  # not 0/1 (the z form), mean 0.75
    se = 0.5 / math.sqrt(9999)  # sample sd 0.5 * sqrt(n / (n - 1)), over sqrt(n)
    r = stats.exceeds(x, 0.75 - 18.5 * se)
    assert r.p_value == pytest.approx(1.032369868956329e-76, rel=1e-9, abs=0)
    nz = stats.from_stderr(0.0, 0.01 / math.sqrt(2), 0.085, 0.01 / math.sqrt(2))
    assert nz.p_value == pytest.approx(2 * 9.4795348222033184e-18, rel=1e-9, abs=0)
    assert stats.p_text(nz.p_value) == "p=1.9e-17"
