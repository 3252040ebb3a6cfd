"""Claims (ablate.core.reports.claims) and the mask study's claims table, on synthetic per-item
results."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from fake_evals import correct_items, evaluation, shift, write
from helpers import CLAIMS_CFG as CFG

from ablate.core.config import ConfigError, subschema
from ablate.core.reports import claims as C
from ablate.mask import claims as mask_claims
from ablate.mask.variants import claims_evaluations, resolve_claims, resolve_variants


def samples(values, name, source=None):
    return C.Samples(pd.Series(values, index=range(len(values))), source or f"{name}.parquet", name)


@pytest.fixture
def ev():
    base = correct_items(200, 100, seed=0)
    return C.Evidence(
        {
            "base": samples(base, "base"),
            "much_better": samples(shift(base, 40, seed=1), "much_better"),
            "bit_better": samples(shift(base, 3, seed=2), "bit_better"),
            "worse": samples(shift(base, -30, seed=3), "worse"),
            "bit_worse": samples(shift(base, -4, seed=4), "bit_worse"),
            "tiny_base": samples(base[:10], "tiny_base"),
            "tiny_better": samples(shift(base[:10], 4, seed=5), "tiny_better"),
            "missing": None,
        }
    )


def verdict(rule, ev):
    return C.evaluate_claims([C.Claim("c", "s", rule)], ev).iloc[0]


def test_beats_verdicts(ev):
    row = verdict(C.beats("much_better", "base"), ev)
    assert row.verdict == "supported" and row.test == "exact McNemar" and row.n == 200
    assert row.p_value < 1e-6 and "much_better 0.700 - base 0.500: diff +0.200" in row.evidence
    assert row.inputs == "base.parquet; much_better.parquet"
    # points the right way, test does not clear alpha: inconclusive
    assert verdict(C.beats("bit_better", "base"), ev).verdict == "inconclusive"
    # too few items, however large the effect
    assert verdict(C.beats("tiny_better", "tiny_base"), ev).verdict == "inconclusive"
    # the data point the other way (significantly or not): not supported
    assert verdict(C.beats("worse", "base"), ev).verdict == "not supported"
    assert verdict(C.beats("bit_worse", "base"), ev).verdict == "not supported"
    assert verdict(C.beats("base", "base"), ev).verdict == "not supported"


def test_missing_input_is_not_run(ev):
    for rule in (
        C.beats("much_better", "missing"),
        C.beats("nowhere", "base"),
        C.within_margin("missing", "base", 0.05),
        C.monotone([(1, "base"), (2, "missing")]),
    ):
        row = verdict(rule, ev)
        assert row.verdict == "not run", rule
        assert "missing input" in row.evidence and pd.isna(row.p_value)


def test_exceeds_verdicts(ev):
    """base: 100 of 200 correct (0.5, standard error 0.035)."""
    row = verdict(C.exceeds("base", 0.40), ev)
    assert row.verdict == "supported" and row.p_value < 0.01 and row.n == 200
    assert "base 0.500 vs threshold 0.400: diff +0.100" in row.evidence
    assert verdict(C.exceeds("base", 0.47), ev).verdict == "inconclusive"  # 0.03 above: noise
    assert verdict(C.exceeds("base", 0.5), ev).verdict == "not supported"
    assert verdict(C.exceeds("worse", 0.5), ev).verdict == "not supported"
    assert verdict(C.exceeds("tiny_better", 0.1), ev).verdict == "inconclusive"  # n < min_n
    # a threshold computed from the evidence (the mask claims: chance + margin)
    ev.params["chance"] = {"base": 0.25}
    row = verdict(C.exceeds("base", lambda e: e.params["chance"]["base"] + 0.3), ev)
    assert row.verdict == "not supported" and "threshold 0.550" in row.evidence


def test_within_margin_verdicts(ev):
    assert verdict(C.within_margin("bit_worse", "base", 0.1), ev).verdict == "supported"
    # 0.02 below with margin 0.03: the right side of the margin, but not clearly
    assert verdict(C.within_margin("bit_worse", "base", 0.03), ev).verdict == "inconclusive"
    assert verdict(C.within_margin("worse", "base", 0.05), ev).verdict == "not supported"
    row = verdict(C.within_margin("much_better", "base", 0.0), ev)
    assert row.verdict == "supported" and "non-inferiority" in row.test


def test_a_non_inferiority_verdict_says_what_it_claims(tmp_path, ev):
    """bit_worse is 0.02 below base and within the margin 0.1: supported, beside a negative
    difference. The printed tables (Markdown: the report's first screen reads it; HTML; LaTeX)
    say "at most 0.1 below" beside the verdict; the CSV keeps the verdict alone."""
    claims = [
        C.Claim("close", "bit_worse at most 0.1 below", C.within_margin("bit_worse", "base", 0.1)),
        C.Claim("above", "much_better beats base", C.beats("much_better", "base")),
    ]
    df = C.evaluate_claims(claims, ev, study="demo")
    assert list(df.verdict) == ["supported", "supported"] and "diff -0.020" in df.evidence[0]
    out = tmp_path / "demo"
    C.write_claims(df, f"{out}.csv", f"{out}.md", f"{out}.html", tex=f"{out}.tex")
    said = "supported (claim: at most 0.1 below)"
    for ext in ("md", "html", "tex"):
        text = (tmp_path / f"demo.{ext}").read_text()
        assert text.count(said) == 1, ext  # the beats claim's verdict stays as it is
    assert list(pd.read_csv(f"{out}.csv").verdict) == ["supported", "supported"]
    assert C.verdict_text("not run", df.test[0]) == "not run"


def test_monotone_verdicts(ev):
    up = [(2, "base"), (8, "much_better"), (4, "bit_better")]
    assert verdict(C.monotone(up), ev).verdict == "supported"
    assert verdict(C.monotone(up, increasing=False), ev).verdict == "not supported"
    # ends barely apart: the right way, within noise
    flat = [(1, "base"), (2, "bit_better")]
    assert verdict(C.monotone(flat), ev).verdict == "inconclusive"
    # a significant step the wrong way in the middle
    dip = [(1, "base"), (2, "worse"), (3, "much_better")]
    assert verdict(C.monotone(dip), ev).verdict == "not supported"
    with pytest.raises(ValueError, match="two points"):
        C.monotone([(1, "base")])


def test_table_columns_and_files(tmp_path, ev):
    claims = [
        C.Claim("a", "A beats base", C.beats("much_better", "base")),
        C.Claim("b", "needs a missing input", C.beats("missing", "base")),
    ]
    df = C.evaluate_claims(claims, ev, study="demo")
    assert list(df.columns) == C.COLUMNS
    assert list(df.verdict) == ["supported", "not run"] and set(df.study) == {"demo"}
    C.write_claims(df, tmp_path / "c" / "demo.csv", tmp_path / "c" / "demo.md")
    back = pd.read_csv(tmp_path / "c" / "demo.csv")
    assert list(back.columns) == C.COLUMNS and list(back.claim) == ["a", "b"]
    md = (tmp_path / "c" / "demo.md").read_text()
    assert md.startswith("# Claims: demo") and "| a | A beats base | supported |" in md
    assert not list((tmp_path / "c").glob(".*tmp"))  # atomic writes leave nothing behind
    with pytest.raises(ValueError, match="verdict"):
        C.ClaimResult("probably", "")


def test_a_printed_table_states_the_p_floor_it_prints_at(ev):
    """A p below 1e-300 prints as "<1e-300" and the table says what that means; a table with
    no p at a floor says nothing of it."""
    df = C.evaluate_claims([C.Claim("a", "A beats base", C.beats("much_better", "base"))], ev)
    assert not any("p<1e-300" in line for line in C.to_markdown(df).splitlines())
    tiny = df.assign(p_value=5e-324, test="one-sided z vs 0.5")
    md = C.to_markdown(tiny)
    assert "| <1e-300 |" in md and "`p<1e-300`: a tail below 1e-300" in md
    assert "a tail below 1e-300" in C.to_html(tiny)
    floor = df.assign(p_value=1 / 10001, test="paired bootstrap (10000)")
    assert "| <0.0001 |" in C.to_markdown(floor) and "`p<0.0001`: no bootstrap" in C.to_markdown(
        floor
    )


# ---------------------------------------------------------------- the mask study's claims

VARIANTS = {
    "3A": {"stage": 3, "policy": "causal"},
    "3B": {"stage": 3, "policy": "prefix_bidir"},
    "5B": {"stage": 5, "policy": "prefix_bidir"},
}
TASKS = ("t1", "t2")


@pytest.fixture
def results(tmp_path):
    """base causal 0.6 / ablated: t1 much lower, t2 the same; 3B recovers more than 3A (t1);
    5B about as 3A; 3B under causal 0.01 below stage 1, 5B 0.15 below."""
    s1 = {t: correct_items(200, 120, seed=i) for i, t in enumerate(TASKS)}
    s2 = {"t1": shift(s1["t1"], -60, 1), "t2": s1["t2"]}
    evals = {
        ("base", "causal"): s1,
        ("base", "prefill_bidir"): s2,
        ("3A", "prefill_bidir"): {"t1": shift(s2["t1"], 2, 2), "t2": s2["t2"]},
        ("3B", "prefill_bidir"): {"t1": shift(s2["t1"], 40, 3), "t2": s2["t2"]},
        ("5B", "prefill_bidir"): {"t1": shift(s2["t1"], 3, 4), "t2": s2["t2"]},
        ("3A", "causal"): s1,
        ("3B", "causal"): {"t1": shift(s1["t1"], -2, 5), "t2": s1["t2"]},
        ("5B", "causal"): {"t1": shift(s1["t1"], -60, 6), "t2": s1["t2"]},
    }
    for (model, policy), per_task in evals.items():
        write(tmp_path, model, policy, *evaluation(f"run-{model}-{policy}", policy, per_task))
    return tmp_path


def table(root, cfg=CFG):
    resolved = resolve_claims(cfg, VARIANTS)
    folders = [root / "eval" / m / p for m, p in claims_evaluations(resolved, "prefill_bidir")]
    return mask_claims.claims_table(
        resolved,
        "prefill_bidir",
        TASKS,
        [d / "metrics.json" for d in folders],
        [d / "samples.parquet" for d in folders],
    ).set_index("claim")


def test_mask_claims_from_results(results):
    df = table(results)
    assert list(df.index) == [
        "learned",
        "learned/t1",
        "learned/t2",
        "ablation_hurts",
        "ablation_hurts/t1",
        "ablation_hurts/t2",
        "ablation_hurts_broadly",
        "prefix_recovers",
        "causal_recovers",
        "long_recovers",
        "prefix_recovers_more",
        "prefix_side_effect_small",
        "long_recovers_more",
        "long_at_least_prefix",
        "long_side_effect_small",
    ]
    v = df.verdict.to_dict()
    # stage 1 is 0.6 on each task, chance 0.25: 0.35 above (> 0.10 per task, > 0.20 macro)
    assert v["learned"] == v["learned/t1"] == v["learned/t2"] == "supported"
    assert "threshold 0.450" in df.loc["learned"].evidence
    # the macro drops by 0.15 (>= 0.10) but only t1 drops: 1 task of the 3 required
    assert v["ablation_hurts_broadly"] == "not supported"
    broadly = df.loc["ablation_hurts_broadly"].evidence
    assert "1 of 2 tasks drop significantly (t1 +0.300)" in broadly
    # one sign convention: the same drop prints the same way in every claim (A - B, where the
    # claim says A is higher: a positive diff points the claimed way)
    drop = "base under causal 0.600 - base under prefill_bidir 0.450: diff +0.150"
    assert drop in df.loc["ablation_hurts"].evidence and f"macro {drop}" in broadly
    assert "t1 0.600 - base under prefill_bidir on t1 0.300: diff +0.300" in (
        df.loc["ablation_hurts/t1"].evidence
    )
    # 5B recovers 3 items of t1 where 3B recovers 40: far more than 0.02 below 3B
    assert v["long_at_least_prefix"] == "not supported"
    assert v["ablation_hurts"] == "supported" and v["ablation_hurts/t1"] == "supported"
    assert v["ablation_hurts/t2"] == "not supported"  # no item changed
    assert v["prefix_recovers_more"] == "supported"
    assert v["long_recovers_more"] == "inconclusive"  # 1 item better than 3A: within noise
    assert v["prefix_side_effect_small"] == "supported"
    assert v["long_side_effect_small"] == "not supported"
    row = df.loc["prefix_recovers_more"]
    assert row.test == "exact McNemar" and row.n == 400 and (df.study == "mask").all()
    assert "run-3B-prefill_bidir" in row.inputs and "run-3A-prefill_bidir" in row.inputs
    assert "3B" in row.statement and "3A" in row.statement
    assert df.loc["ablation_hurts/t1"].n == 200


def test_hurts_broadly_thresholds(results):
    v = table(results, dict(CFG, min_tasks_hurt=1)).verdict
    assert v["ablation_hurts_broadly"] == "supported"
    v = table(results, dict(CFG, min_tasks_hurt=1, min_drop=0.2)).verdict
    assert v["ablation_hurts_broadly"] == "not supported"  # the macro drops by 0.15
    v = table(results, dict(CFG, learned_margin=0.4, learned_margin_macro=0.3)).verdict
    assert v["learned/t1"] == "not supported" and v["learned"] == "supported"


def test_mask_claims_missing_evaluation_is_not_run(results):
    (results / "eval" / "5B" / "causal" / "samples.parquet").unlink()
    df = table(results)
    assert df.loc["long_side_effect_small"].verdict == "not run"
    assert "5B@causal" in df.loc["long_side_effect_small"].evidence
    assert df.loc["long_recovers_more"].verdict == "inconclusive"  # its inputs are there


def test_roles_come_from_config(results):
    cfg = dict(CFG, long_variant=None, causal_variant="5B")
    df = table(results, cfg)
    assert not any(c.startswith("long_") for c in df.index)
    assert "causal finetune 5B" in df.loc["prefix_recovers_more"].statement
    df = table(results, dict(CFG, prefix_variant=None))
    assert "long_recovers_more" in df.index and "long_at_least_prefix" not in df.index
    with pytest.raises(ConfigError, match=r"claims\.prefix_variant: variant '9Z' does not exist"):
        resolve_claims(dict(CFG, prefix_variant="9Z"), VARIANTS)


def test_schema_defaults_name_the_default_variants():
    """The schema's claims defaults name variants of the embedded default config."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    props = subschema("properties/mask/properties/claims")["properties"]
    defaults = {k: v["default"] for k, v in props.items()}
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    variants = resolve_variants(
        config["mask"]["finetune"]["variants"], config["mask"]["finetune"]["defaults"]
    )
    resolved = resolve_claims(defaults, variants)
    assert sorted(resolved["variants"]) == ["3A", "3B", "5B"]
