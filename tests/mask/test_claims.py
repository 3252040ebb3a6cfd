"""The mask study's claims table (ablate.mask.claims): with seeds, each claim stated pooled
over the seeds (items as the unit) and per seed, with "holds in k of n seeds"."""

from __future__ import annotations

from fake_evals import correct_items, evaluation, shift, write
from helpers import CLAIMS_CFG as CFG

from ablate.mask import claims as mask_claims
from ablate.mask import variants as mask_variants


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
