"""The mask study's variants (ablate.mask.variants): the defaults' names and params, a
variant's ``seeds`` expanded into one variant (job, files) per seed, a seed equal to the
variant's own seed that same run, and the claims' roles resolved over the seeds."""

from __future__ import annotations

import pytest
from helpers import CLAIMS_CFG as CFG
from helpers import seeded, shipped_config

from ablate.core.config import ConfigError
from ablate.mask import layout
from ablate.mask import variants as mask_variants

DEFAULT = shipped_config("config.yaml")


def test_default_variants_keep_their_names_and_params():
    """No seeds: the variants, their params and every job's files are what they were."""
    variants = mask_variants.variants_of(DEFAULT)
    assert sorted(variants) == ["3A", "3B", "5B"]
    assert all(
        set(v) == {"stage", "policy", "extends", "allow_leakage", "params"}
        for v in (variants.values())
    )
    assert variants["3B"]["params"]["seed"] == 5
    labels = layout.recovery_labels(layout.jobs(DEFAULT, variants))
    assert all(set(label) == {"stage", "variant", "train_policy"} for label in labels.values())


def test_seeds_expand_into_variants_and_jobs():
    cfg = seeded(**{"3B": [0, 1, 2]})
    variants = mask_variants.variants_of(cfg)
    # 5B extends 3B: it inherits its seeds (its own would replace them)
    assert sorted(variants) == ["3A", "3B-s0", "3B-s1", "3B-s2", "5B-s0", "5B-s1", "5B-s2"]
    v = variants["5B-s1"]
    assert (v["base"], v["seed"], v["params"]["seed"], v["extends"]) == ("5B", 1, 1, "3B")
    assert v["params"]["max_steps"] == 400 and v["policy"] == "prefix_bidir"
    assert mask_variants.seeds_of(variants, "3B") == ["3B-s0", "3B-s1", "3B-s2"]
    jobs = layout.jobs(cfg, variants)
    finetunes = [j for j in jobs if j.rule == "finetune"]
    # each seed its own job and files: the planner forecasts each (3A + 3 x 3B + 3 x 5B)
    assert len(finetunes) == 7 and len({j.outputs["model"] for j in finetunes}) == 7
    assert "results/finetune/3B-s2/final" in {j.outputs["model"] for j in finetunes}
    evals = {j.name for j in jobs if j.rule == "eval_model"}
    assert {"eval/3B-s0/causal", "eval/3B-s2/prefill_bidir", "eval/5B-s1/causal"} <= evals
    label = layout.recovery_labels(jobs)["results/eval/3B-s2/prefill_bidir/metrics.json"]
    assert label == dict(stage=4, variant="3B-s2", train_policy="prefix_bidir", base="3B", seed=2)


def test_a_seed_name_taken_by_a_declared_variant_is_an_error():
    cfg = seeded(**{"3A": [0]})
    cfg["mask"]["finetune"]["variants"]["3A-s0"] = {"stage": 3, "policy": "causal"}
    with pytest.raises(ConfigError, match=r"finetune\.variants\.3A-s0: the name is also a seed"):
        mask_variants.variants_of(cfg)


def test_claim_roles_name_the_declared_variant_and_cover_its_seeds():
    variants = mask_variants.variants_of(seeded(**{"3A": [0, 1], "3B": [0, 1]}))
    resolved = mask_variants.resolve_claims(CFG, variants)
    assert sorted(resolved["variants"]) == ["3A-s0", "3A-s1", "3B-s0", "3B-s1", "5B-s0", "5B-s1"]
    assert resolved["seeds"]["3B"] == {"3B-s0": 0, "3B-s1": 1}
    assert ("3B-s1", "prefill_bidir") in mask_variants.claims_evaluations(resolved, "prefill_bidir")
    with pytest.raises(ConfigError, match=r"variant '3B-s0' does not exist .*: 3A, 3B, 5B"):
        mask_variants.resolve_claims(dict(CFG, prefix_variant="3B-s0"), variants)
    assert "seeds" not in mask_variants.resolve_claims(CFG, mask_variants.variants_of(DEFAULT))


def test_a_seed_equal_to_the_variants_own_seed_is_that_run():
    """`3B: {seeds: [5, 6]}` where 5 is the default's training seed: seed 5 is the default's 3B
    (and 5B, which extends it), the same job, files and config slice, so Snakemake has nothing to
    run for it; only seed 6's finetunes and their evaluations are new. Before, 3B-s5 and 5B-s5
    retrained the default's two finetunes and re-ran their four evaluations under other names."""
    default = {j.name: j for j in layout.jobs(DEFAULT)}
    cfg = seeded(**{"3B": [5, 6]})
    jobs = {j.name: j for j in layout.jobs(cfg)}
    for name, job in default.items():
        if job.rule in ("finetune", "eval_model", "leakage_probe", "prepare_model"):
            assert jobs[name].outputs == job.outputs and jobs[name].config == job.config, name
    new = sorted(set(jobs) - set(default))
    assert new == [
        "eval/3B-s6/causal",
        "eval/3B-s6/prefill_bidir",
        "eval/5B-s6/causal",
        "eval/5B-s6/prefill_bidir",
        "finetune/3B-s6",
        "finetune/5B-s6",
    ]
    variants = mask_variants.variants_of(cfg)
    assert (variants["3B"]["base"], variants["3B"]["seed"]) == ("3B", 5)
    assert mask_variants.seeds_of(variants, "3B") == ["3B", "3B-s6"]
    # its claims are still stated pooled over both seeds and per seed
    claims = mask_variants.resolve_claims(cfg["mask"]["claims"] | CFG, variants)
    assert claims["seeds"]["3B"] == {"3B": 5, "3B-s6": 6}
    assert claims["seeds"]["5B"] == {"5B": 5, "5B-s6": 6}
