"""The embedded multi-model overlay (config/models-embedded.yaml) run end to end, once per session
(the `models_run` fixture): a tiny Ministral-3 and a tiny Llama, each with the whole mask study in
its folder, the cross-model recovery table and claims, STATUS and the plan naming the models."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from checkout import snakemake
from helpers import MODELS_RUN_CONFIGS

from ablate.mask import models as model_dim

RESULTS = "results/models-embedded"
MODELS = {"ministral3": "ministral3", "llama": "llama"}  # name -> its base model's model_type
ARGS = ("--configfile", *MODELS_RUN_CONFIGS)

pytestmark = pytest.mark.slow


def test_each_model_is_its_family_and_has_its_whole_study(models_run):
    for lm, model_type in MODELS.items():
        folder = models_run / RESULTS / "models" / lm
        config = json.loads((folder / "model/base/final/config.json").read_text())
        assert config["model_type"] == model_type
        for f in ("recovery.csv", "claims/mask.csv", "plots/scores.png", "plots/loss_curves.png"):
            assert (folder / f).is_file(), f
        for variant in ("3A", "3B", "5B"):
            assert (folder / f"finetune/{variant}/summary.json").is_file()


def test_the_recovery_table_holds_every_models_table_with_a_model_column(models_run):
    table = pd.read_csv(models_run / RESULTS / "recovery.csv")
    assert table.columns[0] == "model" and list(table["model"].unique()) == list(MODELS)
    for lm in MODELS:
        own = pd.read_csv(models_run / RESULTS / "models" / lm / "recovery.csv")
        mine = table[table["model"] == lm].drop(columns="model").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, own)
        macro = own[own["task"] == "macro"]
        assert sorted(set(macro["stage"])) == [1, 2, 4, 5]


def test_each_claim_is_counted_over_the_models_with_each_models_verdict_beside_it(models_run):
    claims = pd.read_csv(models_run / RESULTS / "claims/mask.csv", keep_default_na=False)
    per = {
        lm: pd.read_csv(
            models_run / RESULTS / "models" / lm / "claims/mask.csv", keep_default_na=False
        )
        for lm in MODELS
    }
    names = [c for c in per["ministral3"]["claim"] if "/" not in c]
    assert names and [c for c in claims["claim"] if "/" not in c] == names
    for claim in names:
        verdicts = {lm: per[lm].set_index("claim").loc[claim, "verdict"] for lm in MODELS}
        row = claims.set_index("claim").loc[claim]
        assert (row["verdict"], row["evidence"]) == model_dim.cross_verdict(verdicts)
        assert row["model"] == "all"
        for lm in MODELS:
            mine = claims.set_index("claim").loc[f"{claim}/{lm}"]
            assert mine["verdict"] == verdicts[lm] and mine["model"] == lm
    assert "holds in" in (models_run / RESULTS / "claims/mask.md").read_text()


def test_status_and_the_plan_name_each_models_jobs(models_run):
    status = (models_run / RESULTS / "STATUS.md").read_text()
    plan = pd.read_csv(models_run / RESULTS / "plan.csv")
    for lm in MODELS:
        assert f"{lm}/finetune/3B" in status
        assert f"- {lm}: stage 1 base under causal: macro" in status
        assert f"{lm}/finetune/3B" in set(plan["job"])
    assert "holds in" in status or "claim `" in status


def test_a_second_run_has_nothing_to_do(models_run):
    r = snakemake(models_run, "-n", *ARGS)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Nothing to be done" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
