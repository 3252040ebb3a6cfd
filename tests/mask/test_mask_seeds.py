"""Seeds as a dimension of the mask study: a variant's ``seeds`` become one variant (job, files,
run id) per seed; the recovery table keeps a seed column; the claims are stated pooled over the
seeds (items as the unit) and per seed, with "holds in k of n seeds"."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import yaml
from fake_evals import correct_items, evaluation, shift, write
from fake_evals import labels as job_labels
from helpers import CLAIMS_CFG as CFG

from ablate.core.config import ConfigError
from ablate.core.reports import claims as C
from ablate.core.reports.seeds import spread_lines, verdict_line
from ablate.mask import claims as mask_claims
from ablate.mask import layout, recovery, report
from ablate.mask import variants as mask_variants

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/config.yaml").read_text())


def seeded(**seeds) -> dict:
    """The default config with ``seeds`` set on the named variants."""
    cfg = copy.deepcopy(DEFAULT)
    for name, s in seeds.items():
        cfg["mask"]["finetune"]["variants"][name]["seeds"] = s
    return cfg


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


# ------------------------------------------------------------------ recovery table


def seeded_recovery(tmp_path):
    """A recovery table of base and 3B with seeds 0 and 1 (t1 only), built as the rule does."""
    base = {"t1": correct_items(100, 60, seed=0)}
    ablated = {"t1": shift(base["t1"], -30, 1)}
    write(tmp_path, "base", "causal", *evaluation("r1", "causal", base))
    write(tmp_path, "base", "prefill_bidir", *evaluation("r2", "prefill_bidir", ablated))
    for s in (0, 1):
        per = {"t1": shift(ablated["t1"], 10 + 5 * s, 2 + s)}
        write(tmp_path, f"3B-s{s}", "prefill_bidir", *evaluation(f"r3-{s}", "prefill_bidir", per))
    variants = {"3B": {"stage": 3, "policy": "prefix_bidir", "seeds": [0, 1]}}
    labels = job_labels(tmp_path, variants, defaults={"seed": 5})
    files = [f for f in labels if "causal" not in f or "base" in f]
    entries = recovery.entries_from_results(
        files, labels, samples_files=[f.replace("metrics.json", "samples.parquet") for f in files]
    )
    return recovery.build_recovery(entries), entries


def test_recovery_table_has_a_seed_column_only_with_seeds(tmp_path):
    df, entries = seeded_recovery(tmp_path)
    cols = list(df.columns)
    assert cols[cols.index("variant") + 1 : cols.index("variant") + 3] == ["base_variant", "seed"]
    macro = df[df.task == "macro"].set_index("variant")
    assert macro.loc["3B-s1", "seed"] == 1 and macro.loc["3B-s1", "base_variant"] == "3B"
    base = macro.loc["base"]  # stage 1 and 2
    assert list(base["base_variant"]) == ["base", "base"] and base["seed"].isna().all()
    unseeded = [dict(e, variant=e["variant"].split("-")[0]) for e in entries[:3]]
    for e in unseeded:
        e.pop("seed", None), e.pop("base", None)
    assert list(recovery.build_recovery(unseeded).columns) == recovery.COLUMNS


def test_status_and_report_show_the_spread_over_seeds(tmp_path):
    df, entries = seeded_recovery(tmp_path)
    csv = tmp_path / "recovery.csv"
    recovery.write_recovery(df, csv)
    rows = [r for r in pd.read_csv(csv, dtype=str, keep_default_na=False).to_dict("records")]
    macro = [r for r in rows if r["task"] == "macro"]
    scores = sorted(float(r["score"]) for r in macro if r["seed"])

    def seed_spread(rows):
        return spread_lines(rows, ("base_variant", "eval_policy"), "score", "macro")

    assert seed_spread(macro) == [
        f"- 3B under prefill_bidir over 2 seeds: macro mean {sum(scores) / 2:.3f}, "
        f"range {scores[0]:.3f} to {scores[1]:.3f}"
    ]
    assert seed_spread([r for r in macro if not r["seed"]]) == []
    row = {"claim": "c", "verdict": "supported", "evidence": "diff +0.1; holds in 2 of 3 seeds"}
    assert verdict_line(row) == "- claim `c`: **supported** (holds in 2 of 3 seeds)"
    assert verdict_line(dict(row, evidence="diff +0.1")) == "- claim `c`: **supported**"
    # the scores figure gains a third panel, the spread (the unseeded figure keeps two)
    seeded_png = report.plot_scores(df, tmp_path / "seeded.png")
    plain = df[df["seed"].isna()].drop(columns=recovery.SEED_COLUMNS)
    plain_png = report.plot_scores(plain, tmp_path / "plain.png")
    # panels side by side (the report's first screen): the third widens the figure
    width = {p: matplotlib.image.imread(p).shape[1] for p in (seeded_png, plain_png)}
    assert width[seeded_png] > 1.3 * width[plain_png]


# ------------------------------------------------------------------ claims


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


def test_pool_seeds_needs_the_same_items():
    a = C.Samples(pd.Series([1.0, 0.0], index=[0, 1]), "a", "A")
    b = C.Samples(pd.Series([1.0, 1.0], index=[0, 2]), "b", "A")
    with pytest.raises(ValueError, match="cover different items"):
        C.pool_seeds([a, b])
    pooled = C.pool_seeds([a, C.Samples(a.values * 0, "c", "A")])
    assert list(pooled.values) == [0.5, 0.0] and pooled.source == "a; c"


def test_seeds3_overlay_runs_three_seeds_of_the_default():
    """config/seeds3.yaml, read after config/config.yaml as README shows, validates and runs
    every stage-3 and stage-5 finetune three times (9 jobs where the default has 3)."""
    from snakemake.utils import update_config

    from ablate.core.config import validate_config

    root = Path(__file__).resolve().parents[2]
    cfg = copy.deepcopy(DEFAULT)
    update_config(cfg, yaml.safe_load((root / "config/seeds3.yaml").read_text()))
    validate_config(cfg)
    jobs = layout.jobs(cfg)
    finetunes = sorted(j.labels["model"] for j in jobs if j.rule == "finetune")
    # seed 5 is the default's own: its run keeps the variant's name (below)
    assert finetunes == sorted(
        f"{v}{'' if s == 5 else f'-s{s}'}" for v in ("3A", "3B", "5B") for s in (5, 6, 7)
    )
    assert sum(j.rule == "eval_model" for j in jobs) == 2 * (1 + 9)
    from ablate.bridge import grid

    entries = grid.resolve(cfg["bridge"]).entries
    assert {e.seed for n, e in entries.items() if e.base == "1b"} == {1234, 1235, 1236}
    # seed 1234 is the default's: its run is the default's 1a run
    default = copy.deepcopy(DEFAULT)
    validate_config(default)
    default_1a = grid.resolve(default["bridge"]).entries["1a"].run_id
    assert entries["1a-s1234"].run_id == default_1a


def test_planner_forecasts_every_seed(tmp_path):
    """The planner's job list is the study's: three seeds, three finetunes each forecast (and
    the seeds' evaluations); the unseeded default plans one per variant."""
    from snakemake.utils import update_config

    from ablate.core import planner

    root = Path(__file__).resolve().parents[2]
    merged = copy.deepcopy(DEFAULT)
    update_config(merged, yaml.safe_load((root / "config/seeds3.yaml").read_text()))
    (tmp_path / "seeds3.yaml").write_text(yaml.safe_dump(merged))
    cfg = planner.load_config(tmp_path / "seeds3.yaml")
    cfg["plan"].update({"setups": [{"gpu": "cpu"}]})
    table = planner.make_plan(cfg, root=tmp_path, actuals=False).table
    jobs = [j for j in table["job"] if j.startswith(("finetune/", "eval/3B"))]
    # seed 5, the default's own, is the default's finetune/3B
    assert [j for j in jobs if j.startswith("finetune/3B")] == [
        "finetune/3B",
        "finetune/3B-s6",
        "finetune/3B-s7",
    ]
    assert len([j for j in jobs if j.startswith("finetune/")]) == 9
    assert len([j for j in jobs if j.startswith("eval/3B")]) == 6


def test_stale_seed_names_its_declared_variant():
    """A seed's changed key is set on its declared variant (mask.finetune.variants.3B), not on a
    variant named 3B-s1, which no config has (before: mask.finetune.defaults)."""
    from ablate.mask import status

    cfg = seeded(**{"3B": [0, 1]})
    cfg["mask"]["finetune"]["variants"]["3B"]["warmup_ratio"] = 0.1
    before = {j.name: j.config for j in layout.jobs(cfg)}
    cfg["mask"]["finetune"]["variants"]["3B"]["warmup_ratio"] = 0.2
    now = {j.name: j for j in layout.jobs(cfg)}
    changes = {
        v: status.changes(now[f"finetune/{v}"], before[f"finetune/{v}"], cfg)
        for v in ("3B-s1", "5B-s1")
    }
    assert changes == {
        "3B-s1": ["mask.finetune.variants.3B.warmup_ratio 0.1 -> 0.2"],
        # the stage-5 variant inherits it: named on itself, then where it is set
        "5B-s1": [
            "mask.finetune.variants.5B.warmup_ratio 0.1 -> 0.2 "
            "(now set by mask.finetune.variants.3B.warmup_ratio)"
        ],
    }


def test_status_of_claims_that_leave_a_seeded_variant_out_is_done(tmp_path):
    """An overlay that seeds 3B (so 5B, extending it, too) and leaves the long-run claims out
    (``long_variant: null``): its claims read no 5B evaluation, so with the 5B seeds not run
    the claims Snakemake made are done in STATUS, as `snakemake -n` plans nothing for them
    (before: the claims job's upstream was every evaluation, and STATUS called it stale)."""
    from snakemake.utils import update_config

    from ablate.core.config import validate_config
    from ablate.core.outputs.io import write_json
    from ablate.core.reports import status

    cfg = copy.deepcopy(DEFAULT)
    update_config(cfg, {"mask": {"finetune": {"variants": {"3B": {"seeds": [0, 1]}}}}})
    update_config(cfg, {"mask": {"claims": {"long_variant": None}}})
    validate_config(cfg)
    jobs = [j for j in layout.jobs(cfg) if j.study == "mask"]
    claims = next(j for j in jobs if j.rule == "mask_claims")
    assert not [u for u in claims.upstream if "5B" in u]
    assert {f"eval/3B-s{s}/prefill_bidir" for s in (0, 1)} <= set(claims.upstream)
    # every job ran but the 5B seeds' (no target of this overlay needs them), in run order
    for t, job in enumerate(j for j in jobs if "5B" not in j.name):
        for f in job.outputs.values():
            (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
            write_json(tmp_path / f, {})
            os.utime(tmp_path / f, (1e9 + t, 1e9 + t))
    rows = {r.job.name: r for r in status.job_rows(jobs, tmp_path, config=cfg)}
    assert rows["eval/5B-s0/causal"].status == "to run"
    assert rows["mask_claims"].status == "done", rows["mask_claims"].why
    assert rows["recovery_table"].status == "stale"  # it reads every evaluation: Snakemake too


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
