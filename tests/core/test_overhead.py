"""Per-job overhead: disk requests that cover what a finetune writes, and the planner's evaluation
rate read from the records' phases (the phase timings themselves: tests/core/outputs/test_phases.py;
checkpoint hashing overlapped with the load: tests/core/outputs/test_checkpoint_integrity.py; GPU
loads named by index: tests/core/models/test_modeling.py). All cheap: no training."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FAMILY_OVERLAYS
from oracles import disk_need_mb

from ablate.core import planner
from ablate.core.planner.inputs import Reference
from ablate.core.planner.model_size import count_params, params_of_hub_model
from ablate.mask import variants as mask_variants
from ablate.mask.tiny import tiny_ministral3_config
from ablate.mask.training.params import resolve_params

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name, size",
    [
        ("ministral3b.yaml", 3.429e9),
        ("ministral3b-smoke.yaml", 3.429e9),
        ("ministral3b.yaml ministral8b.yaml", 8.020e9),  # an overlay, read after its base
        *((f"ministral3b.yaml {name}", size) for name, (_, _, size) in FAMILY_OVERLAYS.items()),
    ],
)
def test_gpu_configs_request_the_disk_a_finetune_writes(name, size):
    config = planner.load_config([REPO / "config" / f for f in name.split()])
    m = config["mask"]["model"]
    if m["source"] == "embedded":
        n = count_params(tiny_ministral3_config(**m["embedded"]["arch"]))
    else:  # the hub model's text shape, offline (config/gpu_measurements.yaml)
        ref = Reference.load(REPO / config["plan"]["measurements"])
        n = params_of_hub_model(m["path"], m.get("revision"), ref.models, ref.path)[0]
    assert n == pytest.approx(size, rel=1e-3)
    have = config["mask"]["resources"]["finetune"]["disk_mb"]
    for v, spec in mask_variants.variants_of(config).items():
        need = disk_need_mb(n, resolve_params(spec["params"], "finetune").as_dict())
        assert have >= need, f"{name}: finetune {v} writes up to {need:.0f} MB, disk_mb {have}"


def test_disk_need_counts_checkpoints_only_when_saved():
    p = resolve_params({"save_steps": 0}, "finetune").as_dict()
    n = 1e9
    assert disk_need_mb(n, p) == pytest.approx(n * 2 * 2 * 1.1 / 1e6)  # two bf16 finals
    p = resolve_params(
        {"save_steps": 100, "save_total_limit": 2, "optim": "adamw_torch"}, "finetune"
    ).as_dict()
    # 3 checkpoints x (bf16 weights 2 + fp32 masters 4 + AdamW's 2 fp32 states 8) + the finals
    assert disk_need_mb(n, p) == pytest.approx(n * (4 + 3 * 14) * 1.1 / 1e6)
    assert disk_need_mb(n, p, gpu=False) == pytest.approx(n * (8 + 3 * (4 + 8)) * 1.1 / 1e6)


def test_planner_reads_the_eval_rate_from_the_records_phases(tmp_path, monkeypatch):
    """A record with ``phases`` gives its own-work seconds (the scorer's), not wall time minus a
    modelled start-up and load: tokens / phases["evaluate.score"]."""
    import json
    import shutil

    monkeypatch.chdir(REPO)  # the config's relative defaults (measurements, offers snapshot)
    root = Path(shutil.copytree(REPO / "tests/fixtures/planner/ministral_h200", tmp_path / "run"))
    metrics = root / "results/ministral3b/eval/base/causal/metrics.json"
    data = json.loads(metrics.read_text())
    data["phases"] = {"startup": 9.0, "load_model": 12.0, "evaluate": 40.0, "evaluate.score": 25.0}
    metrics.write_text(json.dumps(data))
    config = planner.load_config(REPO / "config" / "ministral3b.yaml")
    config["plan"].update({"setups": [{"gpu": "H200"}]})
    t = planner.make_plan(config, root=root, actuals=False).table
    ev = t[(t["setup"] == "1x H200") & (t["job"] == "eval/base/causal")].iloc[0]
    assert ev["tok_s_per_gpu"] == pytest.approx(ev["tokens"] / 25.0, rel=1e-4)
    assert "phases.evaluate.score 25 s" in ev["throughput_source"]
