"""The runtime/cost planner as a whole (``make_plan``, ``ablate plan``): plans for both configs
from fixture runs, actuals, and the pipeline's rules: the forecast before any stage ran, every
actual after a full run. One module's own behaviour is in its test file beside this one
(test_prices.py, test_schedule.py, test_history.py, test_memory.py, test_inputs.py).

Fixture runs (tests/fixtures/planner/, synthetic numbers in the real file formats):
embedded_cpu = a complete cpu run of config/config.yaml; ministral_h200 = finetune 3B and
eval base/causal of config/ministral3b.yaml on one H200. The pipeline tests run Snakemake in a
checkout copy (tests/checkout.py) and read the session's finished embedded run (`embedded_run`).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from checkout import copy_checkout, snakemake
from helpers import EMBEDDED_RUN, FAMILY_OVERLAYS, MINISTRAL_RUN, SETUPS, planner_config, row

from ablate.core import planner
from ablate.core.planner.history import benchmark_seconds
from ablate.core.planner.inputs import Reference, parse_setups
from ablate.core.planner.params import count_params
from ablate.core.planner.prices import load_snapshot
from ablate.core.trees import results_origin
from ablate.mask import plan as mask_plan
from ablate.mask.tiny import tiny_ministral3_config

REPO = Path(__file__).resolve().parents[3]


def load_unpacked(name: str, tmp_path: Path, defaults: dict | None = None, **plan) -> dict:
    """A shipped GPU config with packing off (finetune.defaults.packing: false), or with other
    ``defaults`` for its finetunes."""
    cfg = yaml.safe_load((REPO / "config" / name).read_text())
    cfg["mask"]["finetune"]["defaults"].update(defaults or {"packing": False})
    out = tmp_path / f"edited-{name}"
    out.write_text(yaml.safe_dump(cfg))
    config = planner.load_config(out)
    config["plan"].update({"setups": SETUPS, **plan})
    return config


def check_arithmetic(t: pd.DataFrame) -> None:
    """Every job row obeys the model: est_s = rental + job + tokens / (rate x speedup)."""
    for _, r in t[(t["job"] != planner.TOTAL) & t["est_s"].notna()].iterrows():
        compute = r["tokens"] / (r["tok_s_per_gpu"] * r["speedup"])
        assert r["compute_s"] == pytest.approx(compute, rel=1e-4, abs=0.1)
        restarts = 0.0 if pd.isna(r["interruption_s"]) else r["interruption_s"]
        assert r["est_s"] == pytest.approx(
            r["compute_s"] + r["job_overhead_s"] + r["rental_overhead_s"] + restarts, abs=0.2
        )
        if not pd.isna(r["price_per_hour"]):
            assert r["est_cost_usd"] == pytest.approx(
                r["est_s"] / 3600 * r["price_per_hour"], abs=0.01
            )


def test_embedded_default_plan_from_fixture_run():
    p = planner.make_plan(planner_config("config.yaml"), root=EMBEDDED_RUN, actuals=False)
    t = p.table
    assert list(t.columns) == planner.COLUMNS
    evals = [
        f"eval/{m}/{q}" for m in ("base", "3A", "3B", "5B") for q in ("causal", "prefill_bidir")
    ]
    jobs = [
        "prepare_model",
        "leakage/causal",
        "leakage/prefix_bidir",
        "finetune/3A",
        "finetune/3B",
        "finetune/5B",
        *evals,
    ]
    for setup in ("1x cpu", "1x H200", "8x H100 SXM"):
        assert t[t["setup"] == setup]["job"].tolist() == jobs + [planner.TOTAL]
    check_arithmetic(t)
    # cpu rows use what the fixture run measured; GPU rows cannot (no cpu->GPU transfer)
    ft = row(t, "1x cpu", "finetune/3B")
    assert (
        ft["tok_s_per_gpu"] == 1800.0
        and "results/finetune/3B/summary.json" in ft["throughput_source"]
    )
    assert ft["tokens"] == 200 * 8 * 40  # max_steps x measured mean tokens/step
    assert "summary.json" in row(t, "1x cpu", "finetune/3A")["throughput_source"]
    assert (
        "model/base" not in row(t, "1x cpu", "finetune/3A")["throughput_source"]
    )  # finetune, not pretraining
    # a variant's eval: model size from the checkpoint in this results folder (the metrics name
    # the absolute path where the run happened)
    ev = row(t, "1x cpu", "eval/3A/causal")
    assert (
        ev["throughput_source"].startswith("measured on cpu")
        and "emb-eval-3A-causal" in ev["throughput_source"]
    )
    gpu = row(t, "1x H200", "finetune/3B")
    assert gpu["throughput_source"].startswith("flop-estimate")
    # FLOP estimate: mfu x peak / (6 x params) for training
    assert gpu["tok_s_per_gpu"] == pytest.approx(0.35 * 989e12 / (6 * p.info["params"]), rel=1e-3)
    assert p.info["params"] == count_params(tiny_ministral3_config())
    # one-GPU jobs: no job is faster on 8 GPUs, but independent ones run side by side
    one, eight = row(t, "1x H100 SXM", planner.TOTAL), row(t, "8x H100 SXM", planner.TOTAL)
    assert (t.loc[t["setup"] == "8x H100 SXM", "speedup"].dropna() == 1).all()
    assert eight["est_s"] < one["est_s"] and "side by side" in eight["note"]
    assert row(t, "1x H200", "eval/base/causal")["prices_captured_at"] == "2026-05"


def test_real_config_plan_from_fixture_measurements(tmp_path):
    # the fixture's finetunes ran unpacked: they set the rate of the unpacked config only
    packed = planner.make_plan(
        planner_config("ministral3b.yaml"), root=MINISTRAL_RUN, actuals=False
    ).table
    r = row(packed, "1x H200", "finetune/3A")
    assert r["tok_s_per_gpu"] == 17649.9  # packed and compiled, as the config runs it
    assert "seed-packed-flex-compile causal" in r["throughput_source"]
    # another GPU: scaled by peak FLOP/s (the H100 SXM has the H200's 989 TFLOP/s)
    assert "scaled by peak FLOP/s 989->989" in r["throughput_source"]
    p = planner.make_plan(
        load_unpacked("ministral3b.yaml", tmp_path), root=MINISTRAL_RUN, actuals=False
    )
    t = p.table
    check_arithmetic(t)
    assert p.info["params"] == pytest.approx(3.429e9, rel=1e-3)
    # the pipeline's own H200 summary beats the bench table, for both policies
    for job in ("finetune/3A", "finetune/3B", "finetune/5B"):
        r = row(t, "1x H200", job)
        assert r["tok_s_per_gpu"] == 11000.0 and "m-ft-3B" in r["throughput_source"]
        assert r["measured_run_id"] == "m-ft-3B"
    assert row(t, "1x H200", "finetune/5B")["tokens"] == 6000 * 16 * 260
    # eval: 8000 requests x 100 tokens in 95 s minus the modelled start-up + load
    ev = row(t, "1x H200", "eval/base/prefill_bidir")
    startup_and_load = 20 + 3.429006336e9 * 2 / 1e6 / 1000
    assert ev["tokens"] == 800_000
    assert ev["tok_s_per_gpu"] == pytest.approx(800_000 / (95 - startup_and_load), rel=1e-3)
    # a measurement of the same mode on the GPU itself beats one scaled from another GPU
    h100 = row(t, "1x H100 SXM", "finetune/3B")
    assert h100["tok_s_per_gpu"] == 1305.8 and "seed-default" in h100["throughput_source"]
    # memory: bf16 weights + fp32 masters and grads + activations do not fit a 24 GB card; eval in bf16 does
    r4090 = row(t, "1x RTX 4090", "finetune/3A")
    assert (
        r4090["fits_memory"] == "no" and pd.isna(r4090["est_s"]) and pd.isna(r4090["est_cost_usd"])
    )
    assert "does not fit" in r4090["note"]
    assert row(t, "1x RTX 4090", "eval/base/causal")["fits_memory"] == "yes"
    tot = row(t, "1x RTX 4090", planner.TOTAL)
    assert pd.isna(tot["est_s"]) and "no estimate for finetune/3A" in tot["note"]
    # snapshot prices: per-GPU rate x 8 for the 8-GPU setup, with the source saying so
    eight = row(t, "8x H100 SXM", "finetune/3A")
    assert eight["price_per_hour"] == pytest.approx(8 * 1.85)
    assert "x 8 (no 8-GPU offer" in eight["price_source"]
    lines = "\n".join(planner.summary_lines(p))
    assert "prices captured at: 2026-05" in lines and "3.429 B parameters" in lines


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


def test_estimate_vs_actual_after_a_run(tmp_path):
    config = planner_config("config.yaml")
    # forecast before the run: nothing measured yet (an empty root)
    before = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert before["actual_s"].isna().all() and before["error_pct"].isna().all()
    assert row(before, "1x cpu", "finetune/3A")["throughput_source"].startswith("flop-estimate")
    frozen_csv = tmp_path / "estimate.csv"
    planner.write_plan(planner.Plan(before, {}), frozen_csv)
    plan = planner.make_plan(config, root=EMBEDDED_RUN, frozen=pd.read_csv(frozen_csv))
    after = plan.table
    cpu = after[(after["setup"] == "1x cpu") & (after["job"] != planner.TOTAL)]
    assert cpu["actual_s"].notna().all()  # every job ran on the cpu
    r = row(after, "1x cpu", "finetune/5B")
    assert (
        r["actual_s"] == 96.0
        and r["actual_source"] == "benchmark results/benchmarks/finetune/5B.tsv"
    )
    assert r["error_pct"] == pytest.approx(100 * (r["est_job_s"] - 96.0) / 96.0, abs=0.1)
    assert (
        r["est_job_s"] == row(before, "1x cpu", "finetune/5B")["est_job_s"]
    )  # the frozen forecast
    total = row(after, "1x cpu", planner.TOTAL)
    assert total["actual_s"] == pytest.approx(cpu["actual_s"].sum(), abs=0.1)
    assert total["error_pct"] == pytest.approx(
        100 * (cpu["est_job_s"].sum() - total["actual_s"]) / total["actual_s"], abs=0.1
    )
    # nothing ran on the GPU setups, and their rows say where each job did run
    gpu = after[after["gpu"] != "cpu"]
    assert gpu["actual_s"].isna().all() and gpu["error_pct"].isna().all()
    assert (gpu[gpu["job"] != planner.TOTAL]["status"] == "ran on 1x cpu").all()
    assert (cpu["status"] == "ran on this setup").all()
    assert total["status"] == "14 of 14 jobs ran, 14 with an actual time on this setup"
    # the summary says why the frozen forecast missed: every job from the FLOP estimate
    (line,) = [x for x in planner.summary_lines(plan) if "1x cpu:" in x]
    assert "%: 14 of 14 finished jobs estimated from the FLOP estimate" in line
    worst = cpu.loc[cpu["error_pct"].abs().idxmax()]
    assert f"the largest miss {worst['job']} {worst['error_pct']:+.0f} %" in line


def test_actuals_of_a_job_on_unplanned_hardware_get_their_own_row(tmp_path):
    config = planner_config("ministral3b.yaml", setups=[{"gpu": "H100 SXM"}])
    p = planner.make_plan(config, root=MINISTRAL_RUN)
    extra = p.table[p.table["setup"] == "1x H200"]
    assert sorted(extra["job"]) == ["eval/base/causal", "finetune/3B"]
    assert sorted(extra["actual_s"]) == [131.0, 702.0]
    assert (extra["note"].str.contains("not a setup of this plan")).all()


def test_fresh_estimate_with_actuals_flags_own_run(tmp_path):
    # the fixture's finetunes ran unpacked: their own rate is the unpacked config's
    p = planner.make_plan(load_unpacked("ministral3b.yaml", tmp_path), root=MINISTRAL_RUN)
    r = row(p.table, "1x H200", "finetune/3B")
    assert r["actual_s"] == 702.0 and r["note"].startswith(
        "estimate used this run's own measurement"
    )


def test_cli_writes_csv_and_html(tmp_path, capsys):
    out, html = tmp_path / "plan.csv", tmp_path / "plan.html"
    rc = planner.main(
        [
            "--config",
            "config/ministral3b.yaml",
            "--root",
            str(MINISTRAL_RUN),
            "--out",
            str(out),
            "--html",
            str(html),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "prices captured at: 2026-05" in printed and "1x H200:" in printed
    t = pd.read_csv(out)
    assert list(t.columns) == planner.COLUMNS and (t["job"] == planner.TOTAL).any()
    assert "Runtime and cost plan" in html.read_text() and "finetune/5B" in html.read_text()


def test_cli_writes_the_plan_into_the_configs_results_folder(tmp_path, capsys):
    root = tmp_path / "run"
    shutil.copytree(MINISTRAL_RUN, root)
    args = ["--config", "config/ministral3b.yaml", "--root", str(root), "--no-actuals"]
    assert planner.main(args) == 0
    out = root / "results/ministral3b/plan.csv"  # config key results: results/ministral3b
    assert f"wrote {out}" in capsys.readouterr().out
    assert list(pd.read_csv(out).columns) == planner.COLUMNS


def test_bad_inputs_name_the_key(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(
        (REPO / "config" / "config.yaml").read_text() + "\nplan: {setups: [{count: 2}]}\n"
    )
    with pytest.raises(planner.PlanError, match="plan.setups.0"):
        planner.load_config(bad)
    m = tmp_path / "m.yaml"
    m.write_text("gpus: {}\nmeasurements: [{kind: train, gpu: H200, params: 1}]\n")
    with pytest.raises(planner.PlanError, match=r"measurements\[0\] lacks tokens_per_s, source"):
        Reference.load(m)
    snap = tmp_path / "s.json"
    snap.write_text(
        json.dumps({"captured_at": "x", "offers": [{"gpu_name": "H200", "num_gpus": 1}]})
    )
    with pytest.raises(planner.PlanError, match=r"offers\[0\] lacks 'dph_total'"):
        load_snapshot(snap)
    config = planner_config("config.yaml")
    config["mask"]["eval"]["tasks"] = [{"name": "mystery", "limit": 10}]
    config["mask"]["data"]["source"] = "hub"
    (sp,) = mask_plan.study_plan(config, Reference.load(config["plan"]["measurements"]), tmp_path)
    ev = [j for j in sp.jobs if j.kind == "eval"][0]
    assert ev.tokens is None and "plan.tasks.<task>" in ev.tokens_source


def test_partial_run_says_which_jobs_ran(tmp_path):
    """Some jobs finished: their actuals fill in, every other row says it has not run yet."""
    config = planner_config("config.yaml", setups=[{"gpu": "cpu"}, {"gpu": "H200"}])
    frozen = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert frozen["status"].isna().all()  # an estimate only: actuals were not looked for
    none = planner.make_plan(config, root=tmp_path, frozen=frozen)
    t = none.table
    assert (t["status"] == planner.NOT_RUN).all() and t[
        planner.ACTUAL_COLUMNS[:-1]
    ].isna().all().all()
    assert "jobs run: 0 of 14 (actual_s and error_pct fill in" in "\n".join(
        planner.summary_lines(none)
    )
    for f in (
        "results/finetune/3A/summary.json",
        "results/benchmarks/finetune/3A.tsv",
        "results/eval/base/causal/metrics.json",
    ):  # this one without its benchmark file
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EMBEDDED_RUN / f, tmp_path / f)
    (tmp_path / "results/leakage").mkdir(parents=True)
    (tmp_path / "results/leakage/causal.json").write_text("{}")  # no provenance: no hardware
    part = planner.make_plan(config, root=tmp_path, frozen=frozen)
    t = part.table
    ft = row(t, "1x cpu", "finetune/3A")
    assert ft["actual_s"] == 41.0 and ft["status"] == "ran on this setup"
    assert ft["error_pct"] == pytest.approx(100 * (ft["est_job_s"] - 41.0) / 41.0, abs=0.1)
    ev = row(t, "1x cpu", "eval/base/causal")  # the provenance wall time stands in
    assert ev["actual_source"] == "wall_time_s of results/eval/base/causal/metrics.json"
    assert row(t, "1x H200", "finetune/3A")["status"] == "ran on 1x cpu"
    assert row(t, "1x cpu", "leakage/causal")["status"].startswith("ran, but no actual:")
    assert pd.isna(row(t, "1x cpu", "leakage/causal")["actual_s"])
    assert row(t, "1x cpu", "finetune/5B")["status"] == planner.NOT_RUN
    tot = row(t, "1x cpu", planner.TOTAL)
    assert (
        pd.isna(tot["actual_s"])
        and tot["status"] == "3 of 14 jobs ran, 2 with an actual time on this setup"
    )
    assert "jobs run: 3 of 14" in "\n".join(planner.summary_lines(part))
    # a plan.csv passed as the frozen estimate: its actuals are not carried over
    again = planner.make_plan(config, root=tmp_path / "empty", frozen=t)
    assert again.table["actual_s"].isna().all() and (again.table["status"] == planner.NOT_RUN).all()


# ------------------------------------------------------------- the pipeline's rules

PLAN_FILES = {
    "plan.csv",
    "plan.html",
    "plan/estimate.csv",
    "plan/estimate.html",
    "logs/plan/estimate.log",
    "logs/plan/plan.log",
}
# (snakemake arguments, the config's results folder)
CONFIGS = [
    pytest.param(((), "results"), id="embedded"),
    pytest.param(
        (("--configfile", "config/ministral3b.yaml"), "results/ministral3b"), id="ministral3b"
    ),
]


def job_stats(r) -> set[str]:
    """Rules in the first "Job stats" table Snakemake printed (a dry or a real run)."""
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    out = r.stdout + r.stderr
    if "Job stats:" not in out:
        assert "Nothing to be done" in out, out[-3000:]
        return set()
    table = out.split("Job stats:")[1].splitlines()[3:]  # after the header and dashes
    return {
        line.split()[0] for line in itertools.takewhile(lambda x: not x.startswith("total"), table)
    }


def files_under(wd: Path, *dirs: str) -> set[str]:
    return {
        str(f.relative_to(wd))
        for d in dirs
        if (wd / d).exists()
        for f in (wd / d).rglob("*")
        if f.is_file()
    }


@pytest.mark.parametrize("config_args", CONFIGS)
@pytest.mark.usefixtures("gpu_host")
def test_plan_targets_alone_pull_in_no_stage(tmp_path, config_args):
    config_args, res = config_args
    wd = copy_checkout(tmp_path / "wd")

    def jobs(*targets):
        return job_stats(
            snakemake(wd, *targets, "-n", "--quiet", "rules", *config_args, timeout=300)
        )

    # the forecast (and the plan around it) before renting anything: no stage joins the DAG
    assert jobs(f"{res}/plan.csv") == {"plan_estimate", "plan"}
    assert jobs(f"./{res}/plan.csv", "plan_estimate") == {"plan_estimate", "plan"}
    # with any other target (rule all: none) the plan waits for every stage, so it is written last
    stages = {"leakage_probe", "finetune", "eval_model"}
    assert stages | {"plan_estimate", "plan", "all"} <= jobs()
    assert stages | {"plan"} <= jobs(f"{res}/plan.csv", f"{res}/leakage/causal.json")


@pytest.mark.slow
@pytest.mark.parametrize("config_args", CONFIGS)
def test_pipeline_writes_the_plan_before_any_stage_ran(tmp_path, config_args):
    config_args, res = config_args
    wd = copy_checkout(tmp_path / "wd")
    # offline: the real config's model size comes from the measurements file, not the hub
    env = {"HF_HUB_OFFLINE": "1", "VAST_API_KEY": ""}
    r = snakemake(wd, "-c1", f"{res}/plan.csv", *config_args, timeout=600, env=env)
    assert job_stats(r) == {"plan_estimate", "plan"}
    # no stage ran: the plan's files and the record of the folder's origin (results_origin)
    made = {f"{res}/{f}" for f in [*PLAN_FILES, results_origin.ORIGIN_NAME]}
    assert files_under(wd, "results") == made
    t = pd.read_csv(wd / res / "plan.csv")
    assert list(t.columns) == planner.COLUMNS
    assert t[["actual_s", "actual_source", "error_pct"]].isna().all().all()
    assert (t["status"] == planner.NOT_RUN).all()
    assert t["est_s"].notna().any()
    # the estimate is the frozen forecast, unchanged
    est = pd.read_csv(wd / res / "plan/estimate.csv")
    pd.testing.assert_frame_equal(
        t.drop(columns=planner.ACTUAL_COLUMNS), est.drop(columns=planner.ACTUAL_COLUMNS)
    )
    # rented setups are priced from the snapshot, with its date; the local one is reported unpriced
    captured = json.loads((REPO / "config/offers_snapshot.json").read_text())["captured_at"]
    local = t["price_source"].str.startswith("no price: 1x ") & t["price_source"].str.contains(
        "is a local setup"
    )
    assert (
        local.any()
        and t[local]["price_per_hour"].isna().all()
        and t[local]["est_cost_usd"].isna().all()
    )
    rented = t[~local]
    assert (rented["prices_captured_at"] == captured).all() and rented[
        "price_per_hour"
    ].notna().all()
    html = (wd / res / "plan.html").read_text()
    assert f"prices captured at: {captured}" in html and "jobs run: 0 of" in html
    # asked again, the plan is up to date: still no stage
    assert job_stats(snakemake(wd, "-n", f"{res}/plan.csv", *config_args, env=env)) == set()


@pytest.mark.slow
def test_full_run_writes_the_plan_last_with_every_actual(embedded_run):
    wd = embedded_run
    t = pd.read_csv(wd / "results/plan.csv")
    jobs = t[t["job"] != planner.TOTAL]
    ran = jobs[jobs["status"] == "ran on this setup"]
    # every job ran here (the local setup) and has its actual job time and the error
    assert sorted(ran["job"]) == sorted(jobs["job"].unique())
    assert ran["actual_s"].notna().all() and ran["error_pct"].notna().all()
    # each job's actual is its Snakemake benchmark file
    benchmarks = [wd / s.removeprefix("benchmark ") for s in ran["actual_source"]]
    for (_, r), bench in zip(ran.iterrows(), benchmarks, strict=True):
        secs = benchmark_seconds(bench)
        assert r["actual_s"] == pytest.approx(round(secs, 1), abs=1e-6)  # the CSV keeps 0.1 s
        assert r["error_pct"] == pytest.approx(100 * (r["est_job_s"] - secs) / secs, abs=0.1)
    local = ran["setup"].iloc[0]
    assert (ran["setup"] == local).all()
    tot = row(t, local, planner.TOTAL)
    assert tot["actual_s"] == pytest.approx(ran["actual_s"].sum(), abs=0.1) and not pd.isna(
        tot["error_pct"]
    )
    others = jobs[jobs["setup"] != local]
    assert (others["status"] == f"ran on {local}").all() and others["actual_s"].isna().all()
    # compared against the forecast frozen before the stages ran
    est = pd.read_csv(wd / "results/plan/estimate.csv")
    assert t["est_job_s"].equals(est["est_job_s"])
    # written last: after every planned job ended (Snakemake writes a job's benchmark file when
    # it ends). Only the planned studies' jobs: the default config runs the bridge too, unplanned,
    # and its jobs may still run when the plan is written.
    assert max(f.stat().st_mtime for f in benchmarks) <= (wd / "results/plan.csv").stat().st_mtime
    # up to date for the default target; asked for alone it reads the stages instead of
    # depending on them, a different input list: Snakemake rewrites the plan, and only the plan
    assert job_stats(snakemake(wd, "-n")) == set()
    assert job_stats(snakemake(wd, "-n", "results/plan.csv")) == {"plan"}


@pytest.mark.slow
def test_partial_plan_becomes_full_after_the_stages(embedded_run, tmp_path):
    wd = tmp_path / "copy"
    shutil.copytree(embedded_run, wd, symlinks=True)  # keeps mtimes: the run stays up to date
    metrics = wd / "results/eval/5B/prefill_bidir/metrics.json"
    aside = tmp_path / "metrics.json"
    os.replace(metrics, aside)  # as if that evaluation had not run yet
    # the plan alone: takes the finished stages, runs no stage (the evaluation stays missing)
    assert job_stats(snakemake(wd, "-c1", "results/plan.csv")) == {"plan"}
    assert not metrics.exists()
    t = pd.read_csv(wd / "results/plan.csv")
    gone = t[t["job"] == "eval/5B/prefill_bidir"]
    assert (gone["status"] == planner.NOT_RUN).all() and gone["actual_s"].isna().all()
    local = t[t["status"] == "ran on this setup"]["setup"].iloc[0]
    tot = row(t, local, planner.TOTAL)
    assert pd.isna(tot["actual_s"]) and tot["status"].startswith("13 of 14 jobs ran")
    assert job_stats(snakemake(wd, "-n", "results/plan.csv")) == set()  # up to date as it is
    # a stale stage (its config changed) is not rebuilt for a forecast: no GPU job starts
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    cfg["mask"]["finetune"]["variants"]["3A"]["learning_rate"] = 5e-4
    (wd / "config/edited.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    edited = ("--configfile", "config/edited.yaml")
    assert "finetune" in job_stats(snakemake(wd, "-n", *edited))  # the full run would rebuild it
    assert job_stats(snakemake(wd, "-n", "results/plan.csv", *edited)) <= {"plan", "plan_estimate"}
    # a newer result of a finished stage reruns the plan alone (the outputs' times are a param)
    redone = wd / "results/eval/3A/causal/metrics.json"
    before = redone.stat()
    os.utime(redone)
    assert job_stats(snakemake(wd, "-n", "results/plan.csv")) == {"plan"}
    os.utime(redone, ns=(before.st_atime_ns, before.st_mtime_ns))
    # the stage finishes (its output is back, mtime kept): the default target reruns the plan only
    os.replace(aside, metrics)
    assert job_stats(snakemake(wd, "-n", "--quiet", "rules")) == {"plan", "status", "all"}
    assert job_stats(snakemake(wd, "-c1")) == {"plan", "status", "all"}
    t = pd.read_csv(wd / "results/plan.csv")
    assert row(t, local, "eval/5B/prefill_bidir")["status"] == "ran on this setup"
    assert not pd.isna(row(t, local, planner.TOTAL)["actual_s"])


# ------------------------------------------------------- a forecast never stops a study


def test_leakage_records_name_their_model_as_a_string(tmp_path):
    """A finished leakage probe's JSON has "model" as a path string (ablate.mask.leakage),
    a metrics.json has {"path": ...}; both are read, the probe's run becomes a measurement."""
    root = tmp_path / "embedded"
    shutil.copytree(EMBEDDED_RUN, root)
    probe = json.loads((root / "results/leakage/causal.json").read_text())
    assert isinstance(probe["model"], str)  # as the pipeline writes it
    t = planner.make_plan(planner_config("config.yaml"), root=root).table
    r = row(t, "1x cpu", "leakage/causal")
    assert "results/leakage/causal.json" in r["throughput_source"] and r["status"] == (
        "ran on this setup"
    )
    # the real study: the probe loaded the hub model by id (no config.json): the config's model
    mroot = tmp_path / "ministral"
    shutil.copytree(MINISTRAL_RUN, mroot)
    leak = mroot / "results/ministral3b/leakage/causal.json"
    leak.parent.mkdir(parents=True)
    prov = json.loads((mroot / "results/ministral3b/eval/base/causal/metrics.json").read_text())
    leak.write_text(
        json.dumps(
            {
                "policy": "causal",
                "leaks": False,
                "model": "mistralai/Ministral-3-3B-Instruct-2512",
                "revision": None,
                "data": "yahma/alpaca-cleaned",
                "provenance": {**prov["provenance"], "run_id": "m-leak-causal"},
            }
        )
    )
    t = planner.make_plan(planner_config("ministral3b.yaml"), root=mroot).table
    r = row(t, "1x H200", "leakage/causal")
    assert "m-leak-causal" in r["throughput_source"] and r["status"] == "ran on this setup"


def test_unknown_hub_model_gives_rows_that_say_so(tmp_path):
    """A hub model the measurements file does not know (and offline) is no exception:
    every row of the plan says the model size is missing, the totals say which jobs lack one."""
    config = planner_config("ministral3b.yaml")
    config["mask"]["model"]["path"] = "someorg/unknown-model-7b"
    p = planner.make_plan(config, root=tmp_path)
    t = p.table
    jobs = t[t["job"] != planner.TOTAL]
    assert len(jobs) == 13 * len(SETUPS) and jobs["est_s"].isna().all()
    assert (
        jobs["note"].str.contains("model size of 'someorg/unknown-model-7b' unknown offline").all()
    )
    assert (jobs["status"] == planner.NOT_RUN).all()
    tot = row(t, "1x H200", planner.TOTAL)
    assert pd.isna(tot["est_s"]) and "no estimate for leakage/causal" in tot["note"]
    lines = "\n".join(planner.summary_lines(p))
    assert "size unknown" in lines and "no estimate for: eval/3A/causal" in lines


def test_unusable_inputs_are_row_notes(tmp_path, monkeypatch):
    """A missing measurements file, a malformed snapshot, prices: vast without a key, an old frozen
    estimate: the plan is still made, and says what it lacked."""
    snap = tmp_path / "offers.json"
    snap.write_text("{not json")
    config = planner_config(
        "config.yaml",
        measurements=str(tmp_path / "absent.yaml"),
        offers_snapshot=str(snap),
        setups=[{"gpu": "cpu"}, {"gpu": "H200"}],
    )
    p = planner.make_plan(config, root=EMBEDDED_RUN, actuals=False)
    t = p.table
    assert t[t["job"] != planner.TOTAL]["note"].str.contains("measurements file unusable").all()
    assert row(t, "1x cpu", "finetune/3A")["est_s"] > 0  # measured on the cpu by the fixture run
    h200 = row(t, "1x H200", "finetune/3A")
    assert pd.isna(h200["est_s"]) and "no spec for GPU 'H200'" in h200["throughput_source"]
    assert h200["price_source"].startswith(f"no price: offers snapshot {snap} unreadable")
    assert "warning: measurements file" in "\n".join(planner.summary_lines(p))
    config = planner_config("config.yaml", prices="vast", setups=[{"gpu": "H200"}])
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert row(t, "1x H200", planner.TOTAL)["price_source"] == (
        "no price: plan.prices is 'vast' but VAST_API_KEY is not set"
    )
    old = t.rename(columns={"job": "stage"})  # an estimate written by an older planner
    again = planner.make_plan(config, root=tmp_path, frozen=old)
    assert list(again.table.columns) == planner.COLUMNS
    assert any("estimated afresh" in x for x in again.info["problems"])


@pytest.mark.slow
def test_plan_rule_finishes_with_an_unknown_hub_model_and_with_finished_probes(tmp_path):
    """The plan rules run to the end (they are part of `all`) where the planner used to raise:
    a hub model unknown offline, and a results folder with finished leakage probes."""
    wd = copy_checkout(tmp_path / "wd")
    cfg = yaml.safe_load((wd / "config/ministral3b.yaml").read_text())
    cfg["mask"]["model"]["path"] = "someorg/unknown-model-7b"
    cfg["results"] = "results/unknown"
    (wd / "config/unknown.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    shutil.copytree(EMBEDDED_RUN / "results", wd / "results")  # the embedded run's outputs
    env = {"HF_HUB_OFFLINE": "1", "VAST_API_KEY": "", "OMP_NUM_THREADS": "1"}
    for target, args in (
        ("results/unknown/plan.csv", ("--configfile", "config/unknown.yaml")),
        ("results/plan.csv", ()),
    ):
        r = snakemake(wd, "-c1", target, *args, timeout=600, env=env)
        assert job_stats(r) == {"plan_estimate", "plan"}, target
        t = pd.read_csv(wd / target)
        assert list(t.columns) == planner.COLUMNS and len(t) > len(SETUPS)
    jobs = pd.read_csv(wd / "results/unknown/plan.csv")
    jobs = jobs[jobs["job"] != planner.TOTAL]
    assert jobs["note"].str.contains("model size of 'someorg/unknown-model-7b' unknown").all()
    log = (wd / "results/unknown/logs/plan/estimate.log").read_text()
    assert "size unknown" in log
    t = pd.read_csv(wd / "results/plan.csv")
    assert (t[t["job"] == "leakage/causal"]["status"] != planner.NOT_RUN).all()


def test_a_failed_planner_still_writes_a_plan(tmp_path):
    """The rule's last resort (workflow/scripts/plan.py): a plan of one row that says why."""
    p = planner.failed_plan("the planner failed: KeyError: 'x' (see the log)")
    planner.write_plan(p, tmp_path / "plan.csv", tmp_path / "plan.html")
    t = pd.read_csv(tmp_path / "plan.csv")
    assert list(t.columns) == planner.COLUMNS and t["note"].tolist() == [p.info["failed"]]
    assert planner.summary_lines(p) == [f"no plan: {p.info['failed']}"]
    assert "KeyError" in (tmp_path / "plan.html").read_text()


def test_finetune_tokens_from_recorded_pair_lengths(tmp_path):
    """A finetune's tokens are pairs x their mean length, not max_seq_len per pair: the
    measurements file's sft_lengths of the hub dataset until a finetune of the results folder
    records its own (summary.json lengths, written by ablate.mask.training.run.finetune)."""
    config = planner_config("ministral3b.yaml")
    ref = Reference.load(REPO / "config" / "gpu_measurements.yaml")
    mean = ref.sft_lengths["yahma/alpaca-cleaned"]["mean"]
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    ft = row(t, "1x H100 SXM", "finetune/3B")
    assert ft["tokens"] == 1200 * 16 * mean and "sft_lengths.yahma" in ft["tokens_source"]
    assert "packed into 1 row(s)" in ft["tokens_source"]
    record = tmp_path / mask_plan.layout.path(config, "finetune_summary", variant="3A")
    record.parent.mkdir(parents=True)
    lengths = {"n": 5, "mean": 100.0, "max_seq_len": 1024}
    record.write_text(json.dumps({"lengths": lengths}))
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    ft = row(t, "1x H100 SXM", "finetune/5B")
    assert ft["tokens"] == 6000 * 16 * 100.0 and "pairs results/" in ft["tokens_source"]
    # recorded at another max_seq_len: not these pairs
    record.write_text(json.dumps({"lengths": {**lengths, "max_seq_len": 512}}))
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert row(t, "1x H100 SXM", "finetune/5B")["tokens"] == 6000 * 16 * mean


def test_multi_gpu_setup_runs_finetunes_side_by_side_and_data_parallel(tmp_path):
    """8x H100: the three finetunes (and the evaluations) at once on one machine, so the study
    ends sooner than on 1x; a finetune with resources gpu: 2 runs data-parallel at the speed-up
    measured for its recipe and packing mode on any setup of 2 GPUs or more, and on 1 GPU at
    speedup 1."""
    t = planner.make_plan(planner_config("ministral3b.yaml"), root=tmp_path, actuals=False).table
    one, eight = row(t, "1x H100 SXM", planner.TOTAL), row(t, "8x H100 SXM", planner.TOTAL)
    assert one["est_s"] == pytest.approx(
        t[(t["setup"] == "1x H100 SXM") & (t["job"] != planner.TOTAL)]["est_s"].sum(), abs=1
    )
    ft = [row(t, "8x H100 SXM", f"finetune/{v}")["est_s"] for v in ("3A", "3B", "5B")]
    assert eight["est_s"] < one["est_s"] - sum(ft) + max(ft) + 1  # the finetunes overlap
    assert "side by side" in eight["note"] and row(t, "8x H100 SXM", "finetune/3A")["speedup"] == 1
    cfg = yaml.safe_load((REPO / "config" / "ministral3b.yaml").read_text())
    cfg["mask"]["resources"]["finetune"]["gpu"] = 2
    (tmp_path / "dp.yaml").write_text(yaml.safe_dump(cfg))
    config = planner.load_config(tmp_path / "dp.yaml")
    config["plan"].update({"setups": SETUPS})
    dp = planner.make_plan(config, root=tmp_path, actuals=False).table
    check_arithmetic(dp)
    # the packed finetune's measured speed-up of sharded masters on 2 H100s (the scaling rows)
    got = row(dp, "8x H100 SXM", "finetune/5B")
    assert got["speedup"] == pytest.approx(1.06)
    assert "sharded_masters, measured on 2 H100 SXM" in got["note"]
    assert row(dp, "1x H100 SXM", "finetune/5B")["speedup"] == 1
    assert row(dp, "8x H100 SXM", "eval/5B/causal")["speedup"] == 1
    assert row(dp, "8x H100 SXM", planner.TOTAL)["est_s"] < eight["est_s"]


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


def test_interruptible_setup_adds_expected_restarts_at_the_bid(tmp_path):
    """A bid setup beside the on-demand one: the same jobs at the bid price, each with the
    expected restarts of the stated assumption (plan.interruptible.per_hour): a finetune loses
    half a checkpoint interval and the copy's lag per interruption, a job without checkpoints
    half its compute; too many interruptions and the finetunes get no estimate."""
    setups = [
        {"gpu": "H100 SXM"},
        {"gpu": "H100 SXM", "interruptible": True},
        {"gpu": "RTX 4090", "interruptible": True},
    ]
    config = planner_config("ministral3b.yaml", setups=setups)
    p = planner.make_plan(config, root=tmp_path, actuals=False)
    t, plan = p.table, config["plan"]
    check_arithmetic(t)
    rate, o = plan["interruptible"]["per_hour"] / 3600, plan["overheads"]
    assert rate > 0 and plan["interruptible"]["price_ratio"] == 0.5  # the stated defaults
    jobs = [j for j in t[t["setup"] == "1x H100 SXM"]["job"] if j != planner.TOTAL]
    shape = config["mask"]["finetune"]["defaults"]
    assert 0 < shape["save_steps"] < shape["max_steps"]  # the finetunes resume from copies
    for job in jobs:
        od, bid = row(t, "1x H100 SXM", job), row(t, "1x H100 SXM bid", job)
        assert od["est_job_s"] == bid["est_job_s"] and pd.isna(od["interruption_s"])
        base, compute = od["est_s"], od["compute_s"]
        if job.startswith("finetune/"):
            steps = config["mask"]["finetune"]["variants"]
            n = steps.get(job.split("/")[1], {}).get("max_steps", shape["max_steps"])
            copy = 3.429006336e9 * plan["train_state_bytes_per_param"] / 1e6 / o["transfer_mb_s"]
            restart = od["job_overhead_s"] + o["boot_s"] + o["setup_s"] + copy
            per = restart + compute * shape["save_steps"] / n / 2 + copy
            assert "half a checkpoint interval" in bid["note"]
        else:
            restart = od["job_overhead_s"] + od["rental_overhead_s"]
            per = restart + compute / 2
            assert "no checkpoint to resume from" in bid["note"]
        assert bid["interruption_s"] == pytest.approx(base / (1 - rate * per) - base, abs=0.2)
        assert bid["est_s"] == pytest.approx(base + bid["interruption_s"], abs=0.2)
    # the price: the snapshot's on-demand H100 x price_ratio; the 4090's stated min_bid
    od, bid = row(t, "1x H100 SXM", planner.TOTAL), row(t, "1x H100 SXM bid", planner.TOTAL)
    assert bid["price_per_hour"] == pytest.approx(od["price_per_hour"] * 0.5)
    assert "plan.interruptible.price_ratio" in bid["price_source"]
    assert row(t, "1x RTX 4090 bid", planner.TOTAL)["price_per_hour"] == 0.31
    assert bid["interruption_s"] > 0 and bid["est_s"] > od["est_s"]
    assert bid["est_cost_usd"] < od["est_cost_usd"]  # the trade-off at the default rate
    assert "interruptible instance" in bid["note"]
    line = next(x for x in planner.summary_lines(p) if "1x H100 SXM bid:" in x)
    assert "expected restarts after being outbid" in line
    # a higher rate costs more time; past one interruption per restart's worth, no estimate
    config["plan"]["interruptible"]["per_hour"] = 1.0
    t1 = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert row(t1, "1x H100 SXM bid", planner.TOTAL)["interruption_s"] > 5 * bid["interruption_s"]
    config["plan"]["interruptible"]["per_hour"] = 10.0
    t10 = planner.make_plan(config, root=tmp_path, actuals=False).table
    ft = row(t10, "1x H100 SXM bid", "finetune/3A")
    assert pd.isna(ft["est_s"]) and "never finishes" in ft["note"]
    assert pd.isna(row(t10, "1x H100 SXM bid", planner.TOTAL)["est_s"])
    # the vast profile's bid is what the executor pays
    prof = tmp_path / "vast.yaml"
    prof.write_text("ablate-vast-max-price: 3.0\nablate-vast-bid: 0.7\n")
    config["plan"].update(
        vast_profile=str(prof), interruptible={"per_hour": 0.1, "price_ratio": 0.5}
    )
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert row(t, "1x H100 SXM bid", planner.TOTAL)["price_per_hour"] == 0.7
    assert "ablate-vast-bid" in row(t, "1x H100 SXM bid", planner.TOTAL)["price_source"]
    ref = Reference.load(REPO / "config" / "gpu_measurements.yaml")
    for bad in ({"gpu": "H100 SXM", "count": 8}, {"gpu": "cpu"}):
        with pytest.raises(planner.PlanError, match="interruptible is a rented one-GPU setup"):
            parse_setups({"setups": [bad | {"interruptible": True}]}, ref)


@pytest.mark.parametrize("name", FAMILY_OVERLAYS)
def test_other_family_overlays_plan_every_job_offline(tmp_path, name):
    """config/<family>.yaml over config/ministral3b.yaml: the hub model's size from its 'models:'
    entry (offline, the published config.json), every job of the seed study planned on one H100
    with its memory and time (no measurement at these sizes: the FLOP estimate), the finetunes on
    one GPU, and a results folder of its own."""
    path, _, size = FAMILY_OVERLAYS[name]
    config = planner.load_config([REPO / "config" / "ministral3b.yaml", REPO / "config" / name])
    assert config["mask"]["model"]["path"] == path and config["results"] == (
        f"results/{name.removesuffix('.yaml')}"
    )
    config["plan"].update({"setups": [{"gpu": "H100 SXM"}]})
    p = planner.make_plan(config, root=tmp_path, actuals=False)
    t = p.table
    check_arithmetic(t)
    assert p.info["params"] == pytest.approx(size, rel=1e-3)
    assert f"config.json of {path}" in p.info["params_source"]
    jobs = t[t["job"] != planner.TOTAL]
    evals = [
        f"eval/{m}/{q}" for m in ("base", "3A", "3B", "5B") for q in ("causal", "prefill_bidir")
    ]
    finetunes = ["finetune/3A", "finetune/3B", "finetune/5B"]
    assert jobs["job"].tolist() == ["leakage/causal", "leakage/prefix_bidir", *finetunes, *evals]
    assert (jobs["fits_memory"] == "yes").all() and jobs["est_s"].notna().all()
    assert (jobs["memory_gb"] < 80).all() and jobs["throughput_source"].str.startswith(
        "flop-estimate"
    ).all()
    assert not pd.isna(row(t, "1x H100 SXM", planner.TOTAL)["est_s"])


def test_a_model_larger_than_one_gpu_plans_onto_the_smallest_setup_where_it_fits(tmp_path):
    """config/ministral8b.yaml (over ministral3b.yaml): its finetunes are refused on one H100 with
    the need per GPU and from how many GPUs they fit, fit on 2x (its weights sharded) and on one
    H200; the summary names the smallest setup of each GPU and says that recipe's speed-up is
    unmeasured."""
    config = planner.load_config(
        [REPO / "config" / "ministral3b.yaml", REPO / "config" / "ministral8b.yaml"]
    )
    p = planner.make_plan(config, root=tmp_path, actuals=False)
    t = p.table
    check_arithmetic(t)
    assert p.info["params"] == pytest.approx(8.02e9, rel=1e-3)
    for v in ("3A", "3B", "5B"):
        one = row(t, "1x H100 SXM", f"finetune/{v}")
        assert one["fits_memory"] == "no" and pd.isna(one["est_s"]) and one["memory_gb"] > 80
        assert one["note"].startswith(
            f"does not fit: needs {one['memory_gb']:.3g} GB per GPU on 1 GPU > 80 GB (H100 SXM); "
            "fits from 2 GPUs"
        )
        two = row(t, "2x H100 SXM", f"finetune/{v}")
        assert two["fits_memory"] == "yes" and two["memory_gb"] < 80 < one["memory_gb"]
        assert "sharded_weights (" in two["note"] and "sharded_weights unmeasured" in two["note"]
        assert row(t, "8x H100 SXM", f"finetune/{v}")["memory_gb"] == two["memory_gb"]  # gpu: 2
        assert row(t, "1x H200", f"finetune/{v}")["fits_memory"] == "yes"
    assert "does not fit in memory: finetune/3A" in row(t, "1x H100 SXM", planner.TOTAL)["note"]
    assert not pd.isna(row(t, "2x H100 SXM", planner.TOTAL)["est_s"])
    lines = planner.summary_lines(p)
    mem = [x for x in lines if x.startswith("memory:")]
    assert mem == [
        "memory: finetune/3A, finetune/3B, finetune/5B do not fit 1x H100 SXM (needs "
        f"{one['memory_gb']:.3g} GB a GPU) (the note says why); the smallest setup of each GPU "
        f"where they fit: 1x H200 (needs {row(t, '1x H200', 'finetune/3A')['memory_gb']:.3g} GB "
        f"a GPU), 2x H100 SXM (needs {two['memory_gb']:.3g} GB a GPU)"
    ]
    assert any(
        x.startswith("scaling: the data-parallel speed-up of finetune/3A, finetune/3B, finetune/5B")
        for x in lines
    )
    # the CLI takes the overlay after its base, as Snakemake's --configfile does
    assert planner.main(
        ["--config", "config/ministral3b.yaml", "config/ministral8b.yaml", "--no-actuals",
         "--out", str(tmp_path / "plan.csv")]
    ) == 0  # fmt: skip


def test_the_setups_are_listed_fastest_first_and_weeks_in_days(tmp_path):
    """`ablate plan` of the real study on a machine without a GPU listed its local setup first:
    "1x cpu: 5318:30:20 total" (221 days, read as hours). Now the fastest setup comes first, a
    total of two days or more says its days, and a setup without a total comes last."""
    config = planner_config("ministral3b.yaml", setups=[{"gpu": "cpu"}, {"gpu": "H100 SXM"}])
    lines = planner.summary_lines(planner.make_plan(config, root=tmp_path, actuals=False))
    totals = [x.strip() for x in lines if " total" in x]
    assert [x.split(":")[0] for x in totals] == ["1x H100 SXM", "1x cpu"], totals
    assert re.fullmatch(r"1x cpu: \d{4,}:\d\d:\d\d total \(\d+ days\), no price", totals[1]), totals


def test_the_plan_says_what_each_gpu_count_buys_a_finetune(tmp_path):
    """`ablate plan`'s summary: each data-parallel finetune on 1, 2, 4 and 8 GPUs, the time and
    speed-up from its own estimate, 8 marked extrapolated (measured on at most 4)."""
    config = planner_config("ministral3b.yaml", setups=[{"gpu": "H100 SXM"}])
    p = planner.make_plan(config, root=tmp_path, actuals=False)
    lines = planner.summary_lines(p)
    at = lines.index(
        "each data-parallel job on 1, 2, 4, 8 GPUs (its resources gpu; time, speed-up):"
    )
    per_job = lines[at + 1 : at + 4]
    assert [x.split(" on ")[0].strip() for x in per_job] == [
        "finetune/3A",
        "finetune/3B",
        "finetune/5B",
    ]
    for x in per_job:
        assert "1: " in x and "(1.00x)" in x and "2: " in x and "(1.06x)" in x
        assert "(1.25x)" in x and "x, extrapolated)" in x.split("8: ")[1]


@pytest.mark.parametrize(("gpus", "said"), [(1, False), (2, False), (4, True)])
def test_finetune_gpus_that_buy_little_are_named_at_the_dry_run(gpus, said):
    """mask.resources.finetune.gpu above what pays (measured below half of linear: 4 GPUs give
    the packed step 1.25x) is named in one line with the key and the alternative; 2 GPUs (1.06x,
    0.53 of linear) and 1 pass silently."""
    from ablate.mask.plan import data_parallel_note

    config = planner.load_config(REPO / "config" / "ministral3b.yaml")
    config["mask"]["resources"]["finetune"]["gpu"] = gpus
    note = data_parallel_note(config)
    assert (note is not None) == said
    if said:
        assert note.startswith(
            "note: mask.resources.finetune.gpu: 4 buys little: 3A, 3B, 5B: 1.25x"
        )
        assert "--resources gpu=N" in note and "\n" not in note
