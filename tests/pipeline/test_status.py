"""Watching a study: STATUS.md before, during (a finetune mid-run) and after a run and
after a config edit (stale, the changed key named); TensorBoard event files and an MLflow store
written by the embedded run and read back; `ablate diff` naming the changed key.

Costs: the fast tests take about a second together; test_status_after_the_run and
test_tensorboard_curves read the session's embedded run (a second); test_during_a_run_and_after_an_edit
reruns one finetune and one evaluation in a copy of it (~45 s on 2 cores).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import disagreements, planned_outputs

from ablate.core.jobs import Job
from ablate.core.planner.inputs import load_config
from ablate.core.reports import status, tracking
from ablate.core.trees import diff

ROOT = Path(__file__).resolve().parents[2]
# Fake secrets in the environment of the run: neither store may ever hold one.
SECRETS = {"HF_TOKEN": "hf_FAKEstatusToken5d1c9e7a", "VAST_API_KEY": "vastFAKEstatusKey3b8f"}


def config_of(wd: Path) -> dict:
    return load_config(wd / "config" / "config.yaml")


def rows_by_name(config: dict, wd: Path) -> dict[str, status.Row]:
    _, rows = status.build(config, wd)
    return {f"{r.job.study}:{r.job.name}": r for r in rows}


# ---------------------------------------------------------------- fast


def test_before_a_run_everything_is_to_run(tmp_path):
    """A fresh checkout: every job of both studies is to run, each naming its missing output."""
    config = config_of(ROOT)
    text, rows = status.build(config, tmp_path)
    assert rows and {r.status for r in rows} == {"to run"}
    assert all(r.why.startswith("missing ") for r in rows)
    assert {r.job.study for r in rows} == {"mask", "bridge"}
    assert "## mask" in text and "## bridge" in text and "no plan yet" in text
    configfile = str(ROOT / "config" / "config.yaml")
    assert status.main(["--configfile", configfile, "--directory", str(tmp_path)]) == 0
    assert "to run" in (tmp_path / "results" / status.STATUS_FILE).read_text()


def test_running_job_from_snakemake_markers(tmp_path):
    """Snakemake's incomplete marker (base64 of the output path) plus a lock: running, with
    the last step and loss the training loop's progress line logged."""
    from ablate.core.training.monitor import Progress, Throughput

    out = "results/finetune/3A/summary.json"
    inc = tmp_path / ".snakemake/incomplete"
    inc.mkdir(parents=True)
    (inc / base64.urlsafe_b64encode(out.encode()).decode()).write_text("{}")
    assert set(status.incomplete_outputs(tmp_path)) == {out}
    log = io.StringIO()
    progress = Progress("finetune causal", Throughput(), stream=log)
    progress.log(7, 40, {"loss": 3.25, "learning_rate": 1e-3})
    (tmp_path / "ft.log").write_text("loading\n" + log.getvalue())
    job = Job("mask", "finetune", "finetune/3A", {}, {"summary": out}, log="ft.log", stage=3)
    (row,) = status.job_rows([job], tmp_path)
    assert (row.status, row.why.split("; ")[1]) == ("interrupted", "step 7/40, loss 3.25")
    (tmp_path / ".snakemake/locks").mkdir()
    (tmp_path / ".snakemake/locks/0.output.lock").write_text(out)
    with a_snakemake_in(tmp_path):  # the lock's holder runs
        (row,) = status.job_rows([job], tmp_path)
    assert row.status == "running" and "step 7/40, loss 3.25" in row.why


@contextlib.contextmanager
def a_snakemake_in(wd):
    """A process whose command line is `snakemake` (as `python -m snakemake` is) running in wd."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "snakemake"], cwd=wd
    )
    # Until the child has exec'd, /proc shows the forking parent's command line (a loaded CI
    # host once read it so): yield only once the child's own line is there.
    cmdline, deadline = Path(f"/proc/{proc.pid}/cmdline"), time.monotonic() + 30
    while b"snakemake" not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_stale_snakemake_lock_is_named_and_its_jobs_interrupted(tmp_path, capsys):
    """A killed run (SIGKILL; the 12.5-min SLURM hang ended so) leaves Snakemake's lock: the next
    run stops on it, and `ablate status` called its started jobs running and said nothing. Now the
    lock is stale when no snakemake runs there: its jobs are interrupted and a line names it."""
    out = "results/finetune/3A/summary.json"
    inc = tmp_path / ".snakemake/incomplete"
    inc.mkdir(parents=True)
    (inc / base64.urlsafe_b64encode(out.encode()).decode()).write_text("{}")
    (tmp_path / ".snakemake/locks").mkdir()
    (tmp_path / ".snakemake/locks/0.output.lock").write_text(out)
    job = Job("mask", "finetune", "finetune/3A", {}, {"summary": out}, log=None, stage=3)
    (row,) = status.job_rows([job], tmp_path)
    assert row.status == "interrupted", row
    line = status.stale_lock_line(tmp_path)
    assert line and line.endswith("the next run stops on it until `snakemake --unlock`"), line
    assert status.main(["-d", str(tmp_path)]) == 0
    assert "a stale Snakemake lock" in capsys.readouterr().out
    assert "Lock: a stale Snakemake lock" in (tmp_path / "results" / status.STATUS_FILE).read_text()
    with a_snakemake_in(tmp_path):
        assert status.stale_lock_line(tmp_path) is None


def test_a_restored_job_says_so_and_from_which_run(tmp_path):
    """A job whose outputs the run cache restored (the marker runcache.restore writes beside its
    first output): done, "restored from the run cache (key <key>, run <id>)"; once it runs
    again (no marker) the note goes."""
    from ablate.core.outputs.io import write_json
    from ablate.core.reruns import runcache

    metrics, samples = (f"results/eval/base/causal/{f}" for f in ("metrics.json", "s.parquet"))
    job = Job("mask", "eval_model", "eval/base/causal", {}, {"metrics": metrics, "samples": samples},
              log=None, record=metrics)  # fmt: skip
    outs = [tmp_path / metrics, tmp_path / samples]
    write_json(outs[0], {"score": 0.5, "provenance": {"run_id": "run-1", "config_hash": "h"}})
    outs[1].write_bytes(b"rows")
    (row,) = status.job_rows([job], tmp_path)
    assert (row.status, row.why) == ("done", "current config")
    parts = {"rule": "eval_model"}
    runcache.store(tmp_path / "cache", parts, outs)
    assert runcache.restore(tmp_path / "cache", parts, outs) is not None
    (row,) = status.job_rows([job], tmp_path)
    key = runcache.key_of(parts)[:12]
    assert (row.status, row.why, row.run_id) == (
        "done",
        f"current config; restored from the run cache (key {key}, run run-1)",
        "run-1",
    )
    runcache.marker_path(outs).unlink()  # what JobCache.restored() does before a job runs
    assert status.job_rows([job], tmp_path)[0].why == "current config"


def test_an_interrupted_finetune_says_it_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """An interrupted finetune (Snakemake's marker, no Snakemake holding the folder) with a
    complete training checkpoint of its own run: "resumes from checkpoint-82 next run" (before:
    "reruns next run"); its run key changed (another base model's content, another learning rate,
    an edited module of the code it ran): "starts afresh" and why, as ablate.core.training.resume
    decides when the job runs. A finished job whose record says it resumed names the checkpoint."""
    from ablate.core.outputs import checkpoint_integrity
    from ablate.core.outputs.io import write_json
    from ablate.core.training import resume

    monkeypatch.chdir(tmp_path)
    summary = "results/finetune/3A/summary.json"
    base = tmp_path / "base.bin"
    base.write_bytes(b"weights")
    params = {"learning_rate": 2.5e-4, "max_steps": 200}
    ckpts = tmp_path / "results/finetune/3A" / checkpoint_integrity.CHECKPOINTS_DIR
    for step in (41, 82):
        (ckpts / f"checkpoint-{step}").mkdir(parents=True)
        checkpoint_integrity.mark_complete(ckpts / f"checkpoint-{step}", step, "save_pretrained")
    identity = resume.resume_identity({"policy": "causal", "params": params}, {"model": str(base)})
    write_json(ckpts / checkpoint_integrity.RUN_KEY_FILE, identity)
    inc = tmp_path / ".snakemake/incomplete"
    inc.mkdir(parents=True)
    (inc / base64.urlsafe_b64encode(summary.encode()).decode()).write_text("{}")
    job = Job("mask", "finetune", "finetune/3A", {}, {"summary": summary}, log=None, stage=3,
              kind="train", record=summary, config={"policy": "causal", "params": params})  # fmt: skip
    (row,) = status.job_rows([job], tmp_path)
    assert row.status == "interrupted"
    assert row.why.endswith("no Snakemake holds the folder: resumes from checkpoint-82 next run")
    job.config = {"policy": "causal", "params": {**params, "learning_rate": 5.0e-4}}
    (row,) = status.job_rows([job], tmp_path)
    assert "starts afresh: its checkpoints belong to another configuration" in row.why
    assert "params.learning_rate 0.00025 -> 0.0005" in row.why
    job.config = {"policy": "causal", "params": params}
    base.write_bytes(b"other weights")
    (row,) = status.job_rows([job], tmp_path)
    assert (
        f"starts afresh: its checkpoints were trained on another model ({base} changed)" in row.why
    )
    # finished, its record saying where it resumed
    (inc / base64.urlsafe_b64encode(summary.encode()).decode()).unlink()
    write_json(
        tmp_path / summary,
        {"resumed_from_step": 82, "provenance": {"run_id": "r", "config_hash": "h"}},
    )
    (row,) = status.job_rows([job], tmp_path)
    assert row.status == "done" and "resumed from checkpoint-82" in row.why


def test_diff_names_the_upstream_key_that_made_an_evaluation_differ(tmp_path, capsys, monkeypatch):
    """Two evaluations with the same config slice whose finetunes differ in max_steps: the diff
    names that key through the finetune records they read (their provenance's ``upstream``),
    in one tree (a rerun: the old records in history/) or across an experiment's tree. Before,
    it said "config: same" and a model hash."""
    from ablate import cli
    from ablate.core.outputs.io import write_json

    def rec(path, run_id, config, upstream=None):
        prov = {"run_id": run_id, "config_hash": "h", "config": config}
        if upstream:
            prov["upstream"] = upstream
        write_json(tmp_path / path, {"macro": {"score": 0.5}, "provenance": prov})

    ft, ev = "results/finetune/3A/summary.json", "results/eval/3A/causal/metrics.json"
    rec(ft, "ft-200", {"params": {"max_steps": 200}})
    rec(ev, "ev-1", {"tasks": ["a"]}, {ft: "ft-200"})
    rec(ft, "ft-40", {"params": {"max_steps": 40}})  # the rerun: ft-200 kept in history/
    rec(ev, "ev-2", {"tasks": ["a"]}, {ft: "ft-40"})
    xft = "results/exp/x/finetune/3A/summary.json"
    rec(xft, "ft-x", {"params": {"max_steps": 100}})
    rec("results/exp/x/eval/3A/causal/metrics.json", "ev-x", {"tasks": ["a"]}, {xft: "ft-x"})
    lines = diff.diff(
        *(diff.find_record(r, [str(tmp_path)]) for r in ("ev-1", "ev-2")), [str(tmp_path)]
    )
    assert "config: same" in lines and "upstream: 1 changed" in lines
    assert f"  {ft}: run ft-200 -> ft-40" in lines and "    params.max_steps 200 -> 40" in lines
    monkeypatch.chdir(tmp_path)
    assert cli.main(["diff", "ev-2", "ev-x"]) == 0
    out = capsys.readouterr().out
    assert f"{ft} / {xft}: run ft-40 -> ft-x" in out and "params.max_steps 40 -> 100" in out


def test_a_job_last_run_by_another_configuration_is_stale(tmp_path):
    """A table last written by an overlay's run (Snakemake's record of it lists a seed's
    metrics, which no job of this configuration makes): stale, as Snakemake reruns it (its input
    list and params changed); with the record of this configuration's own inputs, done."""
    from ablate.core.outputs.io import write_json

    metrics = "results/eval/base/causal/metrics.json"
    table = "results/recovery.csv"
    ev = Job("mask", "eval_model", "eval/base/causal", {}, {"metrics": metrics}, log=None)
    tab = Job("mask", "recovery_table", "recovery_table", {}, {"csv": table}, log=None,
              upstream=["eval/base/causal"])  # fmt: skip
    for f in (metrics, table):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    record = tmp_path / ".snakemake/metadata" / base64.urlsafe_b64encode(table.encode()).decode()
    seed = "results/eval/3A-s6/causal/metrics.json"
    write_json(record, {"rule": "recovery_table", "input": [metrics, seed]})
    config = {"results": "results"}
    rows = status.job_rows([ev, tab], tmp_path, config=config)
    assert status.recorded_inputs(tmp_path, table) == [metrics, seed]
    assert (rows[1].status, rows[1].why) == (
        "stale",
        f"last run by another configuration (it read {seed})",
    )
    write_json(record, {"rule": "recovery_table", "input": [metrics, "config/config.yaml"]})
    assert status.job_rows([ev, tab], tmp_path, config=config)[1].status == "done"


def test_mlflow_uri_prefers_config_then_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.mlflow_uri({}, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.mlflow_uri({}, tmp_path) == "http://mlflow.example:5000"
    assert tracking.mlflow_uri({"mlflow_uri": "sqlite:///x.db"}, tmp_path) == "sqlite:///x.db"
    assert tracking.log_record("absent.json", "eval", "x", {"mlflow": False}, tmp_path) is None


# ---------------------------------------------------------------- the embedded run


@pytest.mark.slow
def test_status_after_the_run(embedded_run):
    """Every job done, with its wall time, numbers and run_id; the rule wrote STATUS.md and the
    report's pages (the provenance of every record beside its numbers)."""
    rows = rows_by_name(config_of(embedded_run), embedded_run)
    assert {r.status for r in rows.values()} == {"done"}, [
        (n, r.status, r.why) for n, r in rows.items() if r.status != "done"
    ]
    ev = rows["mask:eval/3B/prefill_bidir"]
    metrics = json.loads((embedded_run / "results/eval/3B/prefill_bidir/metrics.json").read_text())
    assert ev.run_id == metrics["provenance"]["run_id"] and ev.wall_s > 0
    assert ev.headline.startswith(f"macro {metrics['macro']['score']:.3f}")
    trains = [r for n, r in rows.items() if n.startswith("bridge:train/")]
    assert trains and all(r.headline.startswith("peak ") for r in trains)
    text = (embedded_run / "results" / status.STATUS_FILE).read_text()
    assert "nothing remains" in text and "claim `ablation_hurts`" in text
    prov = (embedded_run / "results/status/provenance.html").read_text()
    assert metrics["provenance"]["run_id"] in prov and metrics["provenance"]["config_hash"] in prov
    assert "transformers 5.23.0" in prov


@pytest.mark.slow
def test_tensorboard_curves(embedded_run):
    """Each finetune wrote TensorBoard event files in its folder (tracking.tensorboard is on by
    default): loss, learning rate, eval loss, tokens/s, at the steps its summary records."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = embedded_run / "results/finetune/3A"
    events = EventAccumulator(str(folder / tracking.TENSORBOARD_DIR))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "eval/loss", "train/tokens_per_second"} <= tags
    summary = json.loads((folder / "summary.json").read_text())
    logged = {s.step: s.value for s in events.Scalars("train/loss")}
    for point in summary["curves"]["train"]:
        assert logged[point["step"]] == pytest.approx(point["loss"], rel=1e-5)


@pytest.mark.slow
def test_during_a_run_and_after_an_edit(embedded_run, tmp_path):
    """Edit 3A's step count (MLflow on): STATUS names the changed key; during the rerun the
    finetune is running at its last logged step and loss; after it, 3A is done, its other
    evaluation is stale, the MLflow store holds the finetune and the evaluation tagged with their
    run_ids, `ablate diff` names the changed key, and no secret reached either store."""
    wd = tmp_path / "run"
    shutil.copytree(embedded_run, wd, symlinks=True)  # keeps mtimes: the run stays finished
    cfg_path = wd / "config/config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["mask"]["finetune"]["variants"]["3A"]["max_steps"] = 40
    cfg["tracking"] = {"mlflow": True}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    rows = rows_by_name(config_of(wd), wd)
    assert rows["mask:finetune/3A"].status == "stale"
    assert rows["mask:finetune/3A"].why == "mask.finetune.variants.3A.max_steps 200 -> 40"
    assert rows["mask:eval/3A/causal"].why == "reads finetune/3A (stale)"
    assert rows["mask:finetune/3B"].status == rows["mask:eval/base/causal"].status == "done"
    before = tmp_path / "3A-before.json"
    shutil.copy2(wd / "results/finetune/3A/summary.json", before)

    env = {**os.environ, **SECRETS, "PYTHONPATH": str(wd / "src"), "OMP_NUM_THREADS": "1"}
    target = "results/eval/3A/causal/metrics.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-c1", target],
        cwd=wd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log = wd / "results/logs/finetune/3A.log"
    seen = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if log.exists() and re.search(r"step \d+/40, loss", log.read_text()):
                seen = rows_by_name(config_of(wd), wd)["mask:finetune/3A"]
                break
            time.sleep(0.5)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-4000:]
    assert seen is not None and seen.status == "running", seen
    assert re.search(r"step \d+/40, loss [0-9.]+", seen.why), seen.why

    rows = rows_by_name(config_of(wd), wd)
    assert rows["mask:finetune/3A"].status == "done"
    assert rows["mask:finetune/3A"].headline.startswith("40/40 steps")
    assert rows["mask:eval/3A/causal"].status == "done"
    assert rows["mask:eval/3A/prefill_bidir"].why == "reads finetune/3A, which ran after it"

    lines = diff.diff(before, wd / "results/finetune/3A/summary.json")
    config_part = lines[lines.index("config: 1 changed") + 1]
    assert config_part.strip() == "params.max_steps 200 -> 40"
    assert any(line.strip().startswith("steps_done 200 -> 40") for line in lines)
    new_id = json.loads((wd / "results/finetune/3A/summary.json").read_text())["provenance"]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ablate.cli",
            "diff",
            "--in",
            str(tmp_path),
            str(before),
            new_id["run_id"],
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0 and "params.max_steps 200 -> 40" in r.stdout, r.stdout + r.stderr

    import mlflow

    client = mlflow.MlflowClient(tracking.mlflow_uri({}, wd / "results"))
    exp = client.get_experiment_by_name("ablate")
    runs = {x.data.tags["ablate.job"]: x for x in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"finetune/3A", "eval/3A/causal"}
    ft, ev = runs["finetune/3A"], runs["eval/3A/causal"]
    assert ft.data.tags["ablate.run_id"] == new_id["run_id"]
    assert ft.data.params["params.max_steps"] == "40"
    assert {"loss", "eval_loss", "learning_rate"} <= set(ft.data.metrics)
    metrics = json.loads((wd / target).read_text())
    assert ev.data.tags["ablate.run_id"] == metrics["provenance"]["run_id"]
    assert ev.data.metrics["score.macro"] == pytest.approx(metrics["macro"]["score"])
    for store in [wd / "results/mlflow.db", *(wd / "results/finetune/3A/tensorboard").iterdir()]:
        data = store.read_bytes()
        assert not any(s.encode() in data for s in SECRETS.values()), store


# ---------------------------------------------------------------- STATUS agrees with Snakemake


@pytest.fixture
def finished_copy(embedded_run, tmp_path) -> Path:
    """A copy of the finished run with this checkout's workflow and library (a reused
    ABLATE_FINISHED_RUN may hold older ones)."""
    from checkout import CHECKOUT, copy_checkout

    wd = tmp_path / "run"
    shutil.copytree(embedded_run, wd, symlinks=True)  # keeps mtimes: the run stays finished
    for name in CHECKOUT:
        path = wd / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    return copy_checkout(wd)


@pytest.mark.slow
def test_status_agrees_with_snakemake_after_an_interrupted_forced_finetune(finished_copy):
    """A finished run, then a forced finetune interrupted mid-run: Snakemake removed its outputs
    when it started and left them marked incomplete; its evaluations still exist. Snakemake
    reran nothing for rule all ("Nothing to be done") while STATUS said the finetune reruns next
    run; now rule all asks for every job's outputs, so the next plain run resumes it, and
    STATUS's rows agree with the dry run, before and after."""
    wd = finished_copy
    config = config_of(wd)
    _, rows = status.build(config, wd)
    assert {r.status for r in rows} == {"done"}
    assert not disagreements(rows, planned_outputs(wd))

    finetune = next(r.job for r in rows if r.job.name == "finetune/5B")
    inc = wd / ".snakemake/incomplete"
    inc.mkdir(parents=True, exist_ok=True)
    for f in finetune.outputs.values():  # what `snakemake --force` and a Ctrl-C leave
        shutil.rmtree(wd / f) if (wd / f).is_dir() else (wd / f).unlink()
        (inc / base64.urlsafe_b64encode(f.encode()).decode()).write_text("{}")
    _, rows = status.build(config, wd)
    by_name = {r.job.name: r for r in rows}
    assert by_name["finetune/5B"].status == "interrupted", by_name["finetune/5B"]
    planned = planned_outputs(wd)
    assert set(finetune.outputs.values()) <= planned
    assert not disagreements(rows, planned)


@pytest.mark.slow
def test_status_of_an_overlay_run_takes_its_config_files(finished_copy):
    """`ablate status --configfile config/config.yaml config/seeds3.yaml`: the overlay's seeds
    are jobs not run yet (the default's run holds only seed 5), as `snakemake -n` with the same
    files plans them; `ablate status` refused the second file (`unrecognized arguments`)."""
    wd = finished_copy
    files = ["config/config.yaml", "config/seeds3.yaml"]
    env = {**os.environ, "PYTHONPATH": str(wd / "src")}
    r = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "status", "--configfile", *files],
        cwd=wd,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "to run" in r.stdout, r.stdout
    config = load_config([wd / f for f in files])
    _, rows = status.build(config, wd)
    assert {r.job.name for r in rows} >= {"finetune/3B-s6", "finetune/3A-s7"}
    assert not disagreements(rows, planned_outputs(wd, "--configfile", *files))
    text = (wd / "results" / status.STATUS_FILE).read_text()
    assert "nothing remains" not in text, text
