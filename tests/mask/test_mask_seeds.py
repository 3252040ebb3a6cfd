"""Seeds as a dimension of the mask study, across its modules: the recovery table keeps a seed
column, STATUS and the report show the spread over seeds, the seeds3 overlay and the planner run
every seed, the claims' STATUS with a seeded variant left out. The seeds' variants are tested in
tests/mask/test_variants.py, their claims in tests/mask/test_claims.py."""

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
from helpers import shipped_config

from ablate.core.reports import claims as C
from ablate.core.reports.seeds import spread_lines, verdict_line
from ablate.mask import layout, recovery, report

DEFAULT = shipped_config("config.yaml")


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
