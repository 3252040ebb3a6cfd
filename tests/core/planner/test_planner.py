"""The runtime/cost planner as a whole (the package's ``make_plan``): plans for both configs
from fixture runs, and the pipeline's rules: the forecast before any stage ran, every actual after
a full run. One module's own behaviour is in its test file beside this one, test_<module>.py
(test_actuals.py, test_cli.py, test_estimate.py, test_output.py, test_overheads.py, ...).

Fixture runs (tests/fixtures/planner/, synthetic numbers in the real file formats):
embedded_cpu = a complete cpu run of config/config.yaml; ministral_h200 = finetune 3B and
eval base/causal of config/ministral3b.yaml on one H200. The pipeline tests run Snakemake in a
checkout copy (tests/checkout.py) and read the session's finished embedded run (`embedded_run`).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from checkout import copy_checkout, snakemake
from helpers import (
    EMBEDDED_RUN,
    FAMILY_OVERLAYS,
    MINISTRAL_RUN,
    SETUPS,
    check_arithmetic,
    load_unpacked,
    planner_config,
    row,
)

from ablate.core import planner
from ablate.core.planner.history import benchmark_seconds
from ablate.core.planner.inputs import Reference
from ablate.core.planner.model_size import count_params
from ablate.core.planner.prices import load_snapshot
from ablate.core.trees import results_origin
from ablate.mask import plan as mask_plan
from ablate.mask.tiny import tiny_ministral3_config

REPO = Path(__file__).resolve().parents[3]


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


def test_the_plan_of_a_finished_run_imports_no_model_code():
    """The plan jobs read tables: the plan of the embedded default over a finished run (the
    sizes of its checkpoints and of the tiny model's config, setup `local` included) imports
    neither transformers nor torch, whose model code took 10-25 s of each plan job on 2 cores;
    torch only where a CUDA driver loads, to name the local GPU."""
    from ablate.core.planner.inputs import has_cuda_driver

    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from helpers import "
        "planner_config; from ablate.core import planner; "
        "config = planner_config('config.yaml', setups=[{'gpu': 'local'}, {'gpu': 'H200'}]); "
        f"planner.make_plan(config, root={str(EMBEDDED_RUN)!r}); "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(["torch"] if has_cuda_driver() else [])


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


def test_a_plan_generates_the_embedded_data_once(monkeypatch, tmp_path):
    """Every finetune and leakage probe reads the generated SFT pairs' lengths and every
    evaluation the generated task documents': each is generated once a process, not once a job
    (5 and 40 times for the embedded default's 13 jobs)."""
    from ablate.mask import embedded

    made = []
    for name in ("sft_pairs", "task_docs"):
        real = getattr(embedded, name)
        monkeypatch.setattr(embedded, name, lambda *a, _r=real, **k: made.append(a) or _r(*a, **k))
    mask_plan.sft_words.cache_clear()
    mask_plan.doc_tokens.cache_clear()
    config = planner_config("config.yaml")
    planner.make_plan(config, root=tmp_path, actuals=False)
    tasks = [t["name"] for t in config["mask"]["eval"]["tasks"]]
    assert len(made) == len(set(made)) == 1 + len(tasks)


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


def test_finetune_tokens_from_recorded_pair_lengths(tmp_path):
    """A finetune's tokens are pairs x their mean length, not max_seq_len per pair: the
    measurements file's sft_lengths of the hub dataset until a finetune of the results folder
    records its own (summary.json lengths, written by ablate.mask.training.entries.finetune)."""
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
