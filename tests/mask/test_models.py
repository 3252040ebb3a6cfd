"""Models as a study dimension (mask.models, ablate.mask.models): the job list, the cross-model
table and claims, the planner per model, the refusals; a one-model config's files unchanged."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import ROOT, dry_run_with, job_counts, shipped_config, validated

from ablate.core.config import ConfigError, validate_config
from ablate.mask import layout
from ablate.mask import models as model_dim

TWO = {
    "mini": {"source": "embedded"},
    "wide": {"source": "embedded", "embedded": {"arch": {"hidden_size": 96}}},
}


def two_models(**mask) -> dict:
    cfg = shipped_config("config.yaml")
    cfg["mask"]["models"] = TWO
    cfg["mask"].update(mask)
    return validated(cfg)


def test_each_model_gets_the_whole_study_in_its_folder_and_the_data_are_shared():
    cfg = two_models()
    one = validated(shipped_config("config.yaml"))
    single = layout.jobs(one)
    jobs = {j.name: j for j in layout.jobs(cfg)}
    per_model = [j for j in single if j.rule != "make_data"]
    for lm in TWO:
        for j in per_model:
            mine = jobs[f"{lm}/{j.name}"]
            assert mine.rule == j.rule and mine.wildcards == {"lm": lm, **j.wildcards}
            assert mine.labels["lm"] == lm
            # every file under the model's folder, named as the one-model study names it
            for k, path in j.outputs.items():
                assert mine.outputs[k] == path.replace("results/", f"results/models/{lm}/", 1)
            assert mine.log == j.log.replace("results/", f"results/models/{lm}/", 1)
            # it reads its own model's jobs and the shared data
            assert mine.upstream == [u if u == "make_data" else f"{lm}/{u}" for u in j.upstream]
    assert jobs["make_data"].outputs == next(j for j in single if j.rule == "make_data").outputs
    assert jobs["models_recovery"].upstream == ["mini/recovery_table", "wide/recovery_table"]
    assert jobs["models_claims"].upstream == ["mini/mask_claims", "wide/mask_claims"]
    assert jobs["models_recovery"].outputs["csv"] == "results/recovery.csv"
    assert jobs["models_claims"].outputs["csv"] == "results/claims/mask.csv"
    # the job configs differ by model where the model does: its base model's slice
    assert jobs["wide/prepare_model"].config != jobs["mini/prepare_model"].config
    assert layout.targets(cfg)[:3] == [
        "results/recovery.csv",
        "results/recovery.parquet",
        "results/claims/mask.csv",
    ]
    assert "results/models/wide/plots/scores.png" in layout.targets(cfg)


def test_a_one_model_config_keeps_its_files():
    cfg = validated(shipped_config("config.yaml"))
    assert model_dim.names(cfg) == []
    jobs = layout.jobs(cfg)
    assert not any(j.labels.get("lm") for j in jobs)
    assert "results/eval/base/causal/metrics.json" in {p for j in jobs for p in j.outputs.values()}
    assert layout.targets(cfg) == [
        "results/recovery.csv",
        "results/recovery.parquet",
        "results/plots/scores.png",
        "results/plots/loss_curves.png",
        "results/claims/mask.csv",
    ]


def test_models_of_two_sources_and_a_bad_name_are_refused_naming_the_key():
    cfg = shipped_config("config.yaml")
    cfg["mask"]["models"] = {
        "mini": {"source": "embedded"},
        "hub": {"source": "pretrained", "path": "x/y"},
    }
    with pytest.raises(
        ConfigError,
        match=r"mask\.models: its models mix sources \(mini: embedded, hub: pretrained\)",
    ):
        model_dim.check(validated(cfg))
    cfg["mask"]["models"] = {"Bad Name": {"source": "embedded"}}
    with pytest.raises(Exception, match="Bad Name"):
        validate_config(cfg)


@pytest.mark.parametrize(
    ("verdicts", "verdict"),
    [
        (["supported", "supported"], "supported"),
        (["not supported", "not supported"], "not supported"),
        (["not supported", "inconclusive"], "not supported"),
        (["supported", "not supported"], "inconclusive"),
        (["inconclusive", "inconclusive"], "inconclusive"),
        (["not run", "not run"], "not run"),
        (["supported", "not run"], "inconclusive"),
    ],
)
def test_a_claim_over_the_models(verdicts, verdict):
    got, evidence = model_dim.cross_verdict(dict(zip(["a", "b"], verdicts)))
    assert got == verdict
    k = verdicts.count("supported")
    assert evidence == f"holds in {k} of 2 models (a: {verdicts[0]}, b: {verdicts[1]})"


def claims_frame(verdicts: dict[str, str]) -> pd.DataFrame:
    from ablate.core.reports.claims import COLUMNS

    rows = [
        dict(
            study="mask",
            claim=c,
            statement=f"{c} holds",
            verdict=v,
            evidence="e",
            test="t",
            p_value=0.01,
            n=30,
            inputs="eval/base/causal",
        )
        for c, v in verdicts.items()
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_the_cross_model_claims_count_each_claim_and_keep_each_models_rows_beside_it():
    a = claims_frame(
        {"ablation_hurts": "supported", "3B_beats_3A": "supported", "x/seed0": "supported"}
    )
    b = claims_frame({"ablation_hurts": "supported", "3B_beats_3A": "not supported"})
    df = model_dim.cross_claims({"llama": a, "qwen": b})
    assert list(df["claim"]) == [
        "ablation_hurts",
        "ablation_hurts/llama",
        "ablation_hurts/qwen",
        "3B_beats_3A",
        "3B_beats_3A/llama",
        "3B_beats_3A/qwen",
        "x/seed0/llama",
    ]
    top = df.set_index("claim")
    assert top.loc["ablation_hurts", "verdict"] == "supported"
    assert top.loc["3B_beats_3A", "verdict"] == "inconclusive"
    assert top.loc["3B_beats_3A", "evidence"].startswith("holds in 1 of 2 models")
    assert top.loc["3B_beats_3A/qwen", "verdict"] == "not supported"
    assert (
        top.loc["3B_beats_3A/qwen", "model"] == "qwen" and top.loc["3B_beats_3A", "model"] == "all"
    )
    assert top.loc["3B_beats_3A/llama", "p_value"] == 0.01


def test_the_cross_model_recovery_table_has_a_model_column_first():
    a = pd.DataFrame({"task": ["macro"], "score": [0.5]})
    df = model_dim.cross_recovery({"llama": a, "qwen": a.assign(score=0.4)})
    assert list(df.columns) == ["model", "task", "score"]
    assert list(df["model"]) == ["llama", "qwen"] and list(df["score"]) == [0.5, 0.4]


def test_the_planner_plans_each_model_with_its_own_size():
    from ablate.core.planner.inputs import load_reference
    from ablate.mask.plan import study_plan

    cfg = two_models()
    plans = study_plan(cfg, load_reference(cfg["plan"]["measurements"]), ROOT / "none")
    assert [p.model for p in plans] == [
        "mini: embedded tiny ministral3",
        "wide: embedded tiny ministral3",
    ]
    assert plans[1].params > plans[0].params
    listed = [j.name for j in layout.jobs(cfg) if j.kind]
    assert [j.id for p in plans for j in p.jobs] == listed
    assert {j.params for j in plans[1].jobs} == {plans[1].params}


def test_a_dry_run_plans_each_models_jobs_and_the_cross_model_products(workflow_copy):
    cfg = {"studies": ["mask"], "mask": {"models": TWO}}
    res = dry_run_with(workflow_copy, cfg, "config/config.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout)
    single = job_counts(
        dry_run_with(workflow_copy, {"studies": ["mask"]}, "config/config.yaml").stdout
    )
    for rule in (
        "prepare_model",
        "leakage_probe",
        "finetune",
        "eval_model",
        "recovery_table",
        "mask_claims",
    ):
        assert counts[rule] == 2 * single[rule], rule
    assert counts["make_data"] == 1 and counts["models_recovery"] == counts["models_claims"] == 1


def test_each_model_is_mask_model_with_its_entry_over_it():
    cfg = two_models()
    base = cfg["mask"]["model"]
    wide = model_dim.model_of(cfg, "wide")
    assert wide["embedded"]["arch"] == {**base["embedded"]["arch"], "hidden_size": 96}
    assert wide["embedded"]["pretrain"] == base["embedded"]["pretrain"]
    assert model_dim.model_of(cfg, "mini") == base
    # a path comes with its own revision; a pretrained model carries no embedded settings
    cfg["mask"]["model"] = {
        "source": "pretrained",
        "path": "a/b",
        "revision": "abc",
        "download": True,
    }
    cfg["mask"]["models"] = {"c": {"path": "c/d"}, "a": {}}
    assert model_dim.model_of(cfg, "c") == {
        "source": "pretrained",
        "path": "c/d",
        "revision": None,
        "download": True,
    }
    assert model_dim.model_of(cfg, "a")["revision"] == "abc"
    cfg["mask"]["models"] = {"e": {"source": "embedded", "embedded": {"arch": {"hidden_sise": 9}}}}
    with pytest.raises(ConfigError, match=r"mask\.models\.e embedded\.arch.*hidden_sise"):
        model_dim.model_of(cfg, "e")


def test_a_model_whose_family_is_not_proven_on_the_shared_recipe_is_refused_by_name(workflow_copy):
    cfg = {
        "studies": ["mask"],
        "mask": {
            "models": {"mini": {}, "llama": {"embedded": {"family": "llama"}}},
            "finetune": {"defaults": {"attn_implementation": "flex_attention"}},
        },
    }
    res = dry_run_with(workflow_copy, cfg, "config/config.yaml")
    out = res.stdout + res.stderr  # Snakemake prints a parse-time error on stdout
    assert res.returncode != 0
    assert (
        "the embedded model (mask.models.llama.embedded.family: llama) has model_type 'llama', "
        "whose mask policies are proven on" in out
    ), out[-2000:]
    assert "not on attn_implementation 'flex_attention'" in out


def test_the_pages_example_is_the_shipped_overlay():
    """docs/own-model.md, "Several models in one study": its YAML is config/models-embedded.yaml's
    keys, its command that overlay's."""
    import re

    import yaml

    page = (ROOT / "docs" / "own-model.md").read_text()
    section = page.split("## Several models in one study")[1].split("\n## ")[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert yaml.safe_load(block) == shipped_config("models-embedded.yaml")
    assert "snakemake -c2 --configfile config/config.yaml config/models-embedded.yaml" in section
