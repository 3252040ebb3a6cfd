"""The run cache through Snakemake, on copies of the finished embedded default (the session's
`embedded_run`, or ABLATE_FINISHED_RUN) with this checkout's code: one evaluation job (stage 1,
the base model under causal; about 17 s on a 2-core CPU) is stored, then restored after an edit
and its revert, restored in a second clone and after its model card was written again by another
run, and refused from a corrupted entry.
Library-level cases: tests/core/reruns/test_runcache.py.
"""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from checkout import snakemake

from ablate.core.reruns import runcache

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TARGET = "results/eval/base/causal/metrics.json"
OUTPUTS = (TARGET, "results/eval/base/causal/samples.parquet")
LOG = "results/logs/eval_model/base.causal.log"
BENCHMARK = "results/benchmarks/eval_model/base.causal.tsv"
#: Snakemake's code trigger left out: the copies carry this checkout's job scripts, which would
#: rerun the base model's pretraining ahead of the evaluation (minutes); the key covers the code
TRIGGERS = ("--rerun-triggers", "mtime", "params", "input", "software-env")


def with_this_code(finished: Path, wd: Path) -> Path:
    """A copy of the finished run (mtimes kept) with this checkout's files where they differ (a
    copy of every file would make Snakemake's code trigger rerun rules whose code is the same)."""
    shutil.copytree(finished, wd, symlinks=True)
    for top in ("src", "workflow", "rules", "Snakefile"):
        src = ROOT / top
        for f in [src] if src.is_file() else sorted(src.rglob("*")):
            dst = wd / f.relative_to(ROOT)
            if f.is_file() and "__pycache__" not in f.parts:
                if not dst.exists() or not filecmp.cmp(f, dst, shallow=False):
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(f, dst)
    return wd


def edited(wd: Path) -> tuple[str, str]:
    """A config file with another eval.max_batch_tokens: the same scores, another config slice,
    so another key (a --configfile replaces config/config.yaml)."""
    text = (wd / "config/config.yaml").read_text()
    assert "max_batch_tokens: 16384" in text
    (wd / "edited.yaml").write_text(
        text.replace("max_batch_tokens: 16384", "max_batch_tokens: 8192")
    )
    return ("--configfile", "edited.yaml")


def run_eval(wd: Path, cache: Path, *extra: str) -> str:
    """The stage-1 evaluation forced to run, with the run cache at `cache`; its job log."""
    r = snakemake(wd, "-c1", "--force", TARGET, *TRIGGERS, "--config", f"run_cache={cache}", *extra)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    return (wd / LOG).read_text()


def outputs(wd: Path) -> dict[str, bytes]:
    return {f: (wd / f).read_bytes() for f in OUTPUTS}


def seconds(wd: Path) -> float:
    return float(pd.read_csv(wd / BENCHMARK, sep="\t")["s"].iloc[0])


@pytest.fixture(scope="module")
def stored(embedded_run, tmp_path_factory):
    """The evaluation run once with the cache on: (checkout, cache, its outputs, its seconds)."""
    base = tmp_path_factory.mktemp("runcache")
    wd, cache = with_this_code(embedded_run, base / "clone1"), base / "cache"
    log = run_eval(wd, cache)
    assert "[run cache] stored" in log and "[run cache] restored" not in log, log[-3000:]
    return wd, cache, outputs(wd), seconds(wd)


def test_edit_and_revert_restores_the_same_bytes_in_seconds(stored):
    wd, cache, first, ran_s = stored
    log = run_eval(wd, cache, *edited(wd))  # the edit: another key, the job runs
    assert "[run cache] restored" not in log and outputs(wd)[TARGET] != first[TARGET]
    log = run_eval(wd, cache)  # the revert: restored, not run
    assert "[run cache] restored entry" in log, log[-3000:]
    assert outputs(wd) == first
    restore_s = seconds(wd)
    print(f"\nevaluation run {ran_s:.1f} s, restored {restore_s:.1f} s")
    assert restore_s < min(5.0, ran_s / 2), (restore_s, ran_s)
    marker = json.loads((wd / (TARGET + runcache.RESTORED_SUFFIX)).read_text())
    run_id = json.loads(first[TARGET])["provenance"]["run_id"]
    assert marker["restored"] is True and marker["from_run_id"] == run_id


def test_a_second_clone_reuses_what_the_first_stored(stored, embedded_run, tmp_path):
    _, cache, first, _ = stored
    wd = with_this_code(embedded_run, tmp_path / "clone2")
    log = run_eval(wd, cache)
    assert "[run cache] restored entry" in log and outputs(wd) == first


def test_a_corrupted_entry_is_refused_and_the_job_runs(stored, embedded_run, tmp_path):
    _, shared, first, _ = stored
    cache = tmp_path / "cache"
    shutil.copytree(shared, cache)  # the other tests keep theirs
    for entry in (p for p in cache.iterdir() if (p / runcache.MANIFEST).is_file()):
        metrics = entry / runcache.OUTPUTS / "0"
        metrics.write_text(metrics.read_text().replace('"score"', '"score" '))
    wd = with_this_code(embedded_run, tmp_path / "clone3")
    log = run_eval(wd, cache)
    assert "[run cache] refused entry" in log and "does not match its sha256" in log, log[-3000:]
    assert "[run cache] restored" not in log
    assert (
        json.loads((wd / TARGET).read_text())["provenance"]["run_id"]
        != json.loads(first[TARGET])["provenance"]["run_id"]
    )  # it ran
    assert list((cache / runcache.REFUSED).iterdir())
    assert not (wd / (TARGET + runcache.RESTORED_SUFFIX)).exists()


def test_an_upstream_rerun_of_the_same_result_keeps_the_evaluation_restorable(stored):
    """The base model's card as a rerun of its job writes it (the same model, another run id and
    time, a newer file): the evaluation's key holds the card's result content, so it restores.
    Before, the card's run id was in the key: every job after an upstream rerun ran again."""
    wd, cache, first, _ = stored
    card = wd / "results/model/base.json"
    before = card.read_bytes()
    record = json.loads(before)
    record["pretrain_run_id"] = record["provenance"]["run_id"] = "20261126T000000-rerun000"
    record["provenance"]["finished_at"] = "2026-11-26T00:00:00+0000"
    try:
        card.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        log = run_eval(wd, cache)
        assert "[run cache] restored entry" in log, log[-3000:]
        assert outputs(wd) == first
    finally:
        card.write_bytes(before)  # the other tests' key


def test_the_plan_rule_counts_the_stored_job_as_zero(stored):
    """rule plan_estimate builds each job's key from Snakemake's own expansion of its rule
    (rules/plan.smk): the stored evaluation's key is the one its JobCache used, so its rows cost
    nothing; the other evaluation of the base model has no entry and is forecast in full."""
    wd, cache, _, _ = stored
    estimate = "results/plan/estimate.csv"
    r = snakemake(wd, "-c1", "--force", estimate, "--config", f"run_cache={cache}")
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    t = pd.read_csv(wd / estimate)
    held, other = (t[t["job"] == f"eval/base/{p}"] for p in ("causal", "prefill_bidir"))
    assert len(held) and (held["est_s"] == 0).all() and (held["est_cost_usd"].fillna(0) == 0).all()
    assert held["note"].str.contains("in the run cache").all()
    assert len(other) and (other["est_s"] > 0).all()
    assert other["note"].str.contains("run cache: no entry for its key").all()
