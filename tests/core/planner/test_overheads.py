"""Start-up, load, saves, boot and download (ablate.core.planner.overheads): measured where the
measurements file has them, modelled elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SETUPS, check_arithmetic, load_unpacked, planner_config, row

from ablate.core import planner
from ablate.core.planner.inputs import Reference, parse_setups

REPO = Path(__file__).resolve().parents[3]


def test_forecast_uses_the_smoke_runs_overheads_and_the_seed_step_times(tmp_path):
    """config/gpu_measurements.yaml's job_overheads (the GPU smoke run, H100 SXM) replace the
    modelled start-up + load + final save for jobs of their kind, rule, GPU and model size, and
    the pipeline recipe's bench row (adafactor, grad_accum 16) sets the finetunes' rate; the smoke
    run's grad_accum-1 step time does not carry over to grad_accum 16."""
    ref = Reference.load(REPO / "config" / "gpu_measurements.yaml")
    measured = {(o.kind, o.rule): o for o in ref.job_overheads if o.gpu == "H100 SXM"}
    t = planner.make_plan(planner_config("ministral3b.yaml"), root=tmp_path, actuals=False).table
    check_arithmetic(t)
    ft = row(t, "1x H100 SXM", "finetune/3A")
    # packed and compiled (the config's mode): that seed step's rate, not the full-row, unpacked
    # or uncompiled one
    assert ft["tok_s_per_gpu"] == 17649.9 and "seed-packed-flex-compile" in ft["throughput_source"]
    assert row(t, "1x H100 SXM", "finetune/3B")["tok_s_per_gpu"] == 17581.8
    eager = planner.make_plan(
        load_unpacked("ministral3b.yaml", tmp_path, {"compile_layers": False}),
        root=tmp_path,
        actuals=False,
    ).table
    assert row(eager, "1x H100 SXM", "finetune/3A")["tok_s_per_gpu"] == 8811.7
    unpacked = planner.make_plan(
        load_unpacked("ministral3b.yaml", tmp_path), root=tmp_path, actuals=False
    ).table
    assert row(unpacked, "1x H100 SXM", "finetune/3A")["tok_s_per_gpu"] == 957.2
    # measured 85 s (the final save included) + the 3 checkpoints of save_steps 400
    # (1200 steps) + the hub download, as modelled
    assert ft["note"].startswith(
        f"job overhead: measured {measured['train', 'finetune'].seconds:.0f}"
    )
    assert "3 checkpoint(s)" in ft["note"] and "GPU smoke run" in ft["note"]
    ev = row(t, "1x H100 SXM", "eval/3A/causal")
    assert ev["job_overhead_s"] == measured["eval", None].seconds
    assert (
        row(t, "1x H100 SXM", "leakage/causal")["job_overhead_s"] > measured["probe", None].seconds
    )  # + download
    # another GPU has no measured overhead: the modelled one (start-up + load)
    h200 = row(t, "1x H200", "eval/3A/causal")
    assert h200["job_overhead_s"] == pytest.approx(20 + 3.429006336e9 * 2 / 1e6 / 1000, abs=0.1)
    # the smoke config itself (grad_accum 1): the smoke run's own step time and rule overheads
    smoke = planner.make_plan(
        load_unpacked("ministral3b-smoke.yaml", tmp_path), root=tmp_path, actuals=False
    ).table
    pm, sft = row(smoke, "1x H100 SXM", "prepare_model"), row(smoke, "1x H100 SXM", "finetune/5B")
    assert pm["job_overhead_s"] == measured["train", "prepare_model"].seconds
    assert sft["job_overhead_s"] == measured["train", "finetune"].seconds
    (smoke_step,) = [m for m in ref.measurements if m.grad_accum == 1 and m.gpu == "H100 SXM"]
    assert sft["tok_s_per_gpu"] == smoke_step.tokens_per_s and "GPU smoke run" in smoke_step.source
    assert "GPU smoke run" in sft["throughput_source"]


def test_one_rented_machine_boots_once_and_downloads_each_model_once(tmp_path):
    """1x H100 as one rented machine (Snakemake on it): no job pays a boot, the TOTAL adds one
    boot and setup, and only the first job that loads the hub model downloads it; rented per job
    (the vast profile) every job that loads it pays both. Several GPUs are always one machine."""
    setups = [{"gpu": "H100 SXM"}, {"gpu": "H100 SXM", "machine": True}, SETUPS[3]]
    config = planner_config("ministral3b.yaml", setups=setups)
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    check_arithmetic(t)
    o = config["plan"]["overheads"]
    download = 3.429006336e9 * config["plan"]["bytes_per_param"] / 1e6 / o["download_mb_s"]
    for label in ("1x H100 SXM machine", "8x H100 SXM"):
        jobs = t[(t["setup"] == label) & (t["job"] != planner.TOTAL)]
        assert (jobs["rental_overhead_s"] == 0).all()
        downloads = [j for j, n in zip(jobs["job"], jobs["note"]) if "download" in n]
        assert downloads == ["leakage/causal"]  # the first of the 7 jobs that load the base
    machine = t[(t["setup"] == "1x H100 SXM machine") & (t["job"] != planner.TOTAL)]
    total = row(t, "1x H100 SXM machine", planner.TOTAL)
    assert total["est_s"] == pytest.approx(
        machine["est_s"].sum() + o["boot_s"] + o["setup_s"], abs=0.5
    )
    assert "rent the machine once" in total["note"]
    per_job = t[(t["setup"] == "1x H100 SXM") & (t["job"] != planner.TOTAL)]
    assert sum("download" in n for n in per_job["note"]) == 7
    saved = per_job["est_s"].sum() - total["est_s"]
    assert saved > 6 * (o["boot_s"] + o["setup_s"]) + 6 * download * 0.99
    probe = row(t, "1x H100 SXM machine", "leakage/prefix_bidir")
    assert (
        probe["job_overhead_s"]
        < row(t, "1x H100 SXM", "leakage/prefix_bidir")["job_overhead_s"] - 0.99 * download
    )
    ref = Reference.load(REPO / "config" / "gpu_measurements.yaml")
    with pytest.raises(planner.PlanError, match=r"plan.setups\[0\]: 8x H100 SXM with machine"):
        parse_setups({"setups": [{"gpu": "H100 SXM", "count": 8, "machine": False}]}, ref)
    labels = [s.label for s in parse_setups({"setups": setups}, ref)]
    assert labels == ["1x H100 SXM", "1x H100 SXM machine", "8x H100 SXM"]
