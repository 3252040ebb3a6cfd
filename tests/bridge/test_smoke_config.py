"""config/latentwire-smoke.yaml, the bridge study's GPU smoke run, checked on the CPU without
training: it validates, its embedded models have the real models' shapes (parameter counts equal
to the hub configs' offline), their tokenizers fill the real vocabulary sizes, its dry run holds
every bridge rule, and the planner fits every job in one 80 GB GPU.
Cost: ~10 s (a dry run, the plan of 18 jobs, two tokenizers trained on 200 documents)."""

from __future__ import annotations

import pytest
from checkout import copy_checkout, snakemake
from helpers import ROOT, job_counts, shipped_config, validated

from ablate.bridge import families, grid, models, world
from ablate.bridge import plan as bridge_plan
from ablate.core import planner
from ablate.core.planner.inputs import Reference
from ablate.core.planner.model_size import count_params, params_of_hub_model
from ablate.core.training.params import resolve_params

NAME = "latentwire-smoke.yaml"
#: the real model each embedded role stands in for (config/latentwire.yaml)
REAL = {
    "source": "mistralai/Mistral-7B-Instruct-v0.3",
    "target": "meta-llama/Llama-3.1-8B-Instruct",
}
H100_GB = 80
RULES = {
    "bridge_data": 1,
    "bridge_model": 2,
    "bridge_source_states": 3,
    "bridge_teacher_states": 3,
    "bridge_train": 8,  # nine entries, 2c = 1a
    "bridge_infer": 2,
    "bridge_summary": 1,
    "bridge_claims": 1,
    "bridge_plots": 1,
    "plan_estimate": 1,
    "plan": 1,
    "status": 1,
}


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(ROOT)  # the plan's default files are relative to the repository root
    monkeypatch.delenv("VAST_API_KEY", raising=False)


def test_smoke_config_has_the_real_shapes_on_one_gpu():
    cfg = validated(shipped_config(NAME))
    bridge = cfg["bridge"]
    assert cfg["results"] == "results/latentwire-smoke"
    ref = Reference.load(ROOT / cfg["plan"]["measurements"])
    for role, hub_id in REAL.items():
        m = bridge[role]
        assert m["source"] == "embedded"
        # the embedded model's parameters are the hub model's (its config, offline)
        real, _ = params_of_hub_model(hub_id, None, ref.models, ref.path)
        assert count_params(bridge_plan.embedded_config(m)) == pytest.approx(real, rel=1e-6)
        real_cfg = ref.models[hub_id]["text_config"]
        assert m["arch"]["tokenizer"]["vocab_size"] == real_cfg["vocab_size"]
        assert m["arch"]["tokenizer"]["pad_to_size"] is True
        # the pretraining resolves, in 16-bit without fp32 masters (the memory arithmetic)
        p = resolve_params({**families.PRETRAIN, **m["pretrain"]}, "pretrain")
        assert (p.model_dtype, p.master_weights, p.optim) == (
            "bfloat16",
            False,
            "adafactor",
        )
    # the seed's 1a translator and its 40 rows in InfoNCE groups of 10, the seed's grid entries
    real = shipped_config("latentwire.yaml")["bridge"]
    keys = ("K", "depth", "bottleneck", "heads", "batch_size", "infonce_group", "model_dtype")
    assert {k: bridge["defaults"][k] for k in keys} == {k: real["defaults"][k] for k in keys}
    assert set(bridge["grid"]) == set(real["grid"])
    study = grid.resolve(bridge, cfg["results"])
    for e in study.runs.values():
        assert e.params["steps"] <= 20 and e.params["eval_size"] <= 32
    assert grid.processes(study.config) == 1
    assert {g: r["gpu"] for g, r in bridge["resources"].items()} == dict.fromkeys(
        ("prepare_model", "frozen_states", "train", "infer"), 1
    )


def test_smoke_tokenizers_fill_the_real_vocabulary(tmp_path):
    """The BPE trainer stops at a few hundred pieces on the embedded corpus; pad_to_size fills
    the rest with pieces no text encodes to, so the embedding has the real number of rows."""
    cfg = shipped_config(NAME)["bridge"]
    docs = [d["text"] for d in world.corpus(0, 200, set())]
    for role in REAL:
        spec = families.family_arch(cfg[role]["family"], cfg[role]["arch"])["tokenizer"]
        tok = models.train_tokenizer(docs, spec, tmp_path / role)
        assert len(tok) == spec["vocab_size"]
        trained = len(models.train_tokenizer(docs, {**spec, "pad_to_size": False}, tmp_path / "x"))
        assert trained < spec["vocab_size"]
        ids = [i for d in docs for i in tok(d)["input_ids"]]
        assert max(ids) < trained  # the filled pieces are never produced
        assert tok.decode([spec["vocab_size"] - 1]) == f"<unused_{spec['vocab_size'] - 1}>"


@pytest.mark.usefixtures("gpu_host")
def test_smoke_dry_run_holds_every_bridge_rule(tmp_path):
    wd = copy_checkout(tmp_path / "checkout")
    r = snakemake(wd, "-n", "--configfile", f"config/{NAME}", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    assert {k: v for k, v in counts.items() if k != "all"} == RULES, counts
    assert not (wd / "results" / "latentwire-smoke").exists()


def test_smoke_plan_fits_every_job_in_one_h100(tmp_path):
    config = planner.load_config(ROOT / "config" / NAME)
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    rows = t[t["job"] != planner.TOTAL]
    assert set(rows["setup"]) == {"1x H100 SXM machine"}
    assert len(rows) == sum(RULES[r] for r in ("bridge_model", "bridge_train", "bridge_infer")) + 6
    assert rows["memory_gb"].notna().all() and rows["est_s"].notna().all()
    assert (rows["memory_gb"] < H100_GB).all() and (rows["fits_memory"] == "yes").all(), rows
    pretrain = rows[rows["job"].str.startswith("model/")]
    assert len(pretrain) == 2 and pretrain["note"].str.contains("adafactor").all()
