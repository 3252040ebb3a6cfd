"""The mask study's claims table (ablate.mask.claims): with seeds, each claim stated pooled
over the seeds (items as the unit) and per seed, with "holds in k of n seeds"."""

from __future__ import annotations

import re

import pytest
from fake_evals import correct_items, evaluation, shift, write
from helpers import CLAIMS_CFG as CFG

from ablate.mask import answer
from ablate.mask import claims as mask_claims
from ablate.mask import variants as mask_variants


def claims_of(root, resolved):
    """The claims table of the evaluations written under ``root``, indexed by claim."""
    folders = [
        root / "eval" / m / p
        for m, p in mask_variants.claims_evaluations(resolved, "prefill_bidir")
    ]
    return mask_claims.claims_table(
        resolved,
        "prefill_bidir",
        ("t1", "t2"),
        [d / "metrics.json" for d in folders],
        [d / "samples.parquet" for d in folders],
    ).set_index("claim")


def seed_results(root, effects):
    """base and 3A as in a study; 3B seed s recovers effects[s] items of t1 over 3A."""
    write_seeds(root, effects)
    return seed_table(root, len(effects))


def write_seeds(root, effects):
    s1 = {"t1": correct_items(200, 120, seed=0), "t2": correct_items(200, 120, seed=9)}
    s2 = {"t1": shift(s1["t1"], -60, 1), "t2": s1["t2"]}
    write(root, "base", "causal", *evaluation("run-base-c", "causal", s1))
    write(root, "base", "prefill_bidir", *evaluation("run-base-a", "prefill_bidir", s2))
    for s, k in enumerate(effects):
        for model, per in (("3A", s2), ("3B", {"t1": shift(s2["t1"], k, 10 + s), "t2": s2["t2"]})):
            write(
                root,
                f"{model}-s{s}",
                "prefill_bidir",
                *evaluation(f"run-{model}-{s}", "prefill_bidir", per),
            )
            write(root, f"{model}-s{s}", "causal", *evaluation(f"run-{model}-{s}-c", "causal", s1))


def seed_table(root, n_seeds):
    variants = {
        f"{m}-s{s}": dict(stage=3, policy=p, base=m, seed=s)
        for m, p in (("3A", "causal"), ("3B", "prefix_bidir"))
        for s in range(n_seeds)
    }
    resolved = mask_variants.resolve_claims(dict(CFG, long_variant=None), variants)
    return claims_of(root, resolved)


def test_claims_are_stated_pooled_and_per_seed(tmp_path):
    # 3B beats 3A by 40 items of t1 in seeds 0 and 1, by 1 item in seed 2
    df = seed_results(tmp_path, [40, 40, 1])
    rows = list(df.index)
    at = rows.index("prefix_recovers_more")  # the pooled row, then one per seed
    assert rows[at + 1 : at + 4] == [f"prefix_recovers_more/seed{s}" for s in range(3)]
    # claims on the base model alone do not depend on a seed: one row each
    assert "learned/seed0" not in rows and "ablation_hurts" in rows
    pooled = df.loc["prefix_recovers_more"]
    assert pooled.verdict == "supported"
    assert pooled.evidence.endswith("holds in 2 of 3 seeds")
    assert "(mean of 3 seeds)" in pooled.evidence
    # the pooled test resamples items (every seed of an item together): n counts items, once
    assert pooled.test.startswith("stratified paired bootstrap") and pooled.n == 400
    assert all(f"run-3B-{s}" in pooled.inputs for s in range(3))
    assert df.loc["prefix_recovers_more/seed2"].verdict == "inconclusive"
    per = df.loc["prefix_recovers_more/seed0"]
    assert (
        per.verdict == "supported" and per.test == "exact McNemar" and "run-3B-1" not in per.inputs
    )
    assert per.statement.endswith("(seed 0)")
    # the side effect (against the unseeded base) is stated per seed too
    assert df.loc["prefix_side_effect_small"].evidence.endswith("holds in 3 of 3 seeds")


def test_a_missing_seed_leaves_the_pooled_claim_not_run(tmp_path):
    """A seed not evaluated yet: the pooled claim waits for it; the other seeds' rows stand."""
    write_seeds(tmp_path, [40, 40])
    (tmp_path / "eval" / "3B-s1" / "prefill_bidir" / "samples.parquet").unlink()
    df = seed_table(tmp_path, 2)
    assert df.loc["prefix_recovers_more"].verdict == "not run"
    assert df.loc["prefix_recovers_more/seed0"].verdict == "supported"
    assert df.loc["prefix_recovers_more/seed1"].verdict == "not run"


# ------------------------------------------------------------ the question: does a finetune recover

VARIANTS = {
    "3A": {"stage": 3, "policy": "causal"},
    "3B": {"stage": 3, "policy": "prefix_bidir"},
    "5B": {"stage": 5, "policy": "prefix_bidir"},
}


def recovery_table(root, gains, drop=(60, 40)):
    """Stage 1 120 of 200 right on t1 and t2; the ablation costs ``drop`` items of t1 and of t2
    (60 and 40: a macro drop of 0.25); each finetune ``v`` under the ablation is stage 2 with ``gains[v]``
    (items of t1, items of t2) made right (negative: wrong); under causal it is stage 1."""
    s1 = {"t1": correct_items(200, 120, seed=0), "t2": correct_items(200, 120, seed=1)}
    s2 = {"t1": shift(s1["t1"], -drop[0], 2), "t2": shift(s1["t2"], -drop[1], 3)}
    write(root, "base", "causal", *evaluation("run-base-c", "causal", s1))
    write(root, "base", "prefill_bidir", *evaluation("run-base-a", "prefill_bidir", s2))
    for i, (v, (g1, g2)) in enumerate(gains.items()):
        ablated = {"t1": shift(s2["t1"], g1, 10 + i), "t2": shift(s2["t2"], g2, 20 + i)}
        write(root, v, "prefill_bidir", *evaluation(f"run-{v}-a", "prefill_bidir", ablated))
        write(root, v, "causal", *evaluation(f"run-{v}-c", "causal", s1))
    resolved = mask_variants.resolve_claims(CFG, VARIANTS)
    return claims_of(root, resolved)


def said(df) -> str | None:
    """The run's answer from this table, as the run reads it from the CSV (every cell text)."""
    rows = df.reset_index().astype(object).where(df.reset_index().notna(), "")
    return answer.answer([{k: str(v) for k, v in r.items()} for _, r in rows.iterrows()])


def test_a_recovering_finetune_wins_back_its_share_of_the_drop(tmp_path):
    """3B wins back 75 of the 100 items the ablation cost (0.75 of the drop), 3A loses 10 more
    (-0.10), 5B is stage 2 item for item: each recovery claim tests the finetune under the
    ablation against the base under it, and states the share of the drop with its interval."""
    df = recovery_table(tmp_path, {"3A": (-10, 0), "3B": (50, 25), "5B": (0, 0)})
    prefix = df.loc["prefix_recovers"]
    assert prefix.verdict == "supported"
    assert prefix.test == "exact McNemar" and prefix.n == 400 and prefix.p_value < 1e-15
    assert prefix.evidence.startswith(
        "3B under prefill_bidir 0.537 - base under prefill_bidir 0.350: diff +0.188 [95% CI "
    )
    assert "; 3B wins back +0.7500 of the drop of 0.250 [95% CI +" in prefix.evidence
    # the share's interval is the difference's over the drop
    diff_ci = re.search(r"diff \+0\.188 \[95% CI ([+-][\d.]+), ([+-][\d.]+)\]", prefix.evidence)
    share_ci = re.search(r"drop of 0\.250 \[95% CI ([+-][\d.]+), ([+-][\d.]+)\]", prefix.evidence)
    for d, s in zip(diff_ci.groups(), share_ci.groups()):
        assert float(s) == pytest.approx(float(d) / 0.25, abs=0.003)
    assert "3B" in prefix.statement and "base model" in prefix.statement
    assert "run-3B-a" in prefix.inputs and "run-base-a" in prefix.inputs
    causal = df.loc["causal_recovers"]
    assert causal.verdict == "not supported"
    assert "; 3A wins back -0.1000 of the drop of 0.250" in causal.evidence
    assert df.loc["long_recovers"].verdict == "not supported"
    assert "; 5B wins back +0.0000 of the drop" in df.loc["long_recovers"].evidence
    # the run's last line
    assert said(df) == "3B wins back 75 % of the ablation's drop (p=5.3e-23), 3A -10 %, 5B 0.0 %."


def test_a_finetune_equal_to_the_base_does_not_recover(tmp_path):
    """3B scores what the base scores under the ablation, or 2 items more (within noise): no
    recovery is claimed, whatever 3A does (prefix_recovers_more holds here only because 3A got
    worse, the case the recovery claim exists for)."""
    df = recovery_table(tmp_path, {"3A": (-40, 0), "3B": (0, 0), "5B": (2, 0)})
    assert df.loc["prefix_recovers"].verdict == "not supported"
    assert "; 3B wins back +0.0000 of the drop of 0.250" in df.loc["prefix_recovers"].evidence
    assert df.loc["prefix_recovers_more"].verdict == "supported"
    assert df.loc["long_recovers"].verdict == "inconclusive"
    assert "; 5B wins back +0.0200 of the drop" in df.loc["long_recovers"].evidence
    assert said(df) == (
        "3B wins back no significant share of the drop (+0.0 %, p=1.000), 3A -40 %, 5B 2.0 %."
    )


def test_no_drop_leaves_nothing_to_recover(tmp_path):
    """Where the ablation does not lower the macro, there is no share to win back: the claim is
    not made either way (inconclusive), even for a finetune above stage 2."""
    df = recovery_table(tmp_path, {"3A": (0, 0), "3B": (30, 0), "5B": (0, 0)}, drop=(0, 0))
    row = df.loc["prefix_recovers"]
    assert row.verdict == "inconclusive"
    assert "; the ablation did not lower the macro (diff +0.000): nothing to win back" in (
        row.evidence
    )
    assert said(df) == (
        "The ablation did not lower the macro score: no finetune has a drop to win back."
    )
