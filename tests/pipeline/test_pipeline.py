"""End to end: the embedded default through Snakemake, once, then what a finished run must do.

One full run (the session fixture `embedded_run`, tests/conftest.py, shared with the planner and
cluster tests) in a temporary checkout; every test reads it or asks
Snakemake about it:

- the table: columns, one row per (task incl. macro, stage, variant, eval policy), run_id ->
  the metrics.json provenance, the acceptance targets (stage 1 >= chance + 15 points, stage 2 below);
- staleness: a no-op rerun is fast and does nothing; editing a stage-3 hyperparameter plans exactly
  that finetune and what depends on it; editing an eval setting plans the evaluations and the
  table, never a finetune (dry runs, so the finished run stays as it is);
- reproducing one stage from cached upstream outputs (one command) reruns it alone, same numbers;
- the Snakemake report builds.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from checkout import snakemake
from helpers import planned_jobs
from PIL import Image

from ablate.core.reports import expected
from ablate.mask.report import MIN_FONT_KEY

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {"3A": ("causal", 4), "3B": ("prefix_bidir", 4), "5B": ("prefix_bidir", 5)}
TASKS = ["emb_count", "emb_order", "emb_pair", "emb_repeat3", "emb_repeat5", "macro"]
EVAL_POLICIES = ("causal", "prefill_bidir")


def eval_jobs(models) -> set[tuple[str, str]]:
    return {
        ("eval_model", f"results/eval/{m}/{p}/metrics.json") for m in models for p in EVAL_POLICIES
    }


def finetune_jobs(variants) -> set[tuple[str, str]]:
    return {("finetune", f"results/finetune/{v}/final") for v in variants}


TABLE_JOBS = {
    ("recovery_table", "results/recovery.csv"),
    ("plot_scores", "results/plots/scores.png"),
    ("mask_claims", "results/claims/mask.csv"),
}
LOSS_PLOT = {("plot_loss_curves", "results/plots/loss_curves.png")}


def dry_run_edited(wd: Path, change, folder: Path) -> set[tuple[str, str | None]]:
    """The jobs a dry run in wd plans after ``change`` of its config, written in ``folder`` (not
    in wd: the session's run is shared, and a copy made meanwhile must not take the edit)."""
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    change(cfg)
    edited = folder / "edited.yaml"
    edited.write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = snakemake(wd, "-n", "--configfile", str(edited))
    assert r.returncode == 0, r.stdout + r.stderr
    return planned_jobs(r.stdout)


@pytest.fixture(scope="module")
def finished(embedded_run):
    return embedded_run


@pytest.fixture(scope="module")
def table(finished) -> pd.DataFrame:
    return pd.read_csv(finished / "results" / "recovery.csv")


# --------------------------------------------------------------- the product


def test_recovery_table_rows_and_columns(finished, table):
    required = [
        "task",
        "stage",
        "variant",
        "train_policy",
        "eval_policy",
        "metric",
        "score",
        "n",
        "chance",
        "delta_vs_stage1",
        "retention_vs_stage1",
        "gain_vs_stage2",
        "recovered_fraction",
        "run_id",
    ]
    assert set(required) <= set(table.columns)
    expected = {(t, 1, "base", "causal") for t in TASKS} | {
        (t, 2, "base", "prefill_bidir") for t in TASKS
    }
    for v, (_, stage) in VARIANTS.items():
        expected |= {(t, stage, v, p) for t in TASKS for p in EVAL_POLICIES}
    got = list(zip(table.task, table.stage, table.variant, table.eval_policy))
    assert len(got) == len(set(got)) == len(expected)
    assert set(got) == expected
    for v, (policy, _) in VARIANTS.items():
        assert set(table[table.variant == v].train_policy) == {policy}
    parquet = pd.read_parquet(finished / "results" / "recovery.parquet")
    parquet = parquet.astype(object).where(parquet.notna(), float("nan"))  # None -> NaN, as in CSV
    pd.testing.assert_frame_equal(parquet, table, check_dtype=False)


def test_every_row_traces_to_its_metrics_provenance(finished, table):
    for row in table.itertuples():
        metrics = json.loads((finished / row.metrics_file).read_text())
        assert metrics["run_id"] == metrics["provenance"]["run_id"] == row.run_id
        assert metrics["policy"] == row.eval_policy
        source = metrics["macro"] if row.task == "macro" else metrics["tasks"][row.task]
        assert source["score"] == pytest.approx(row.score)
        assert Path(row.metrics_file).parts[-3] == row.variant
    for v in VARIANTS:
        summary = json.loads((finished / f"results/finetune/{v}/summary.json").read_text())
        assert set(table[table.variant == v].train_run_id) == {summary["provenance"]["run_id"]}
    # the paper's tables name the record of each row's numbers
    tex = (finished / "results/recovery.tex").read_text()
    for row in table[table.task == "macro"].itertuples():
        assert f"{row.metrics_file} (run {row.run_id})" in tex
        assert f" & {row.score:.3f} ± " in tex
    for name in ("claims/mask.tex", "bridge/claims.tex"):
        assert "\\bottomrule" in (finished / "results" / name).read_text()


def test_study_targets_on_the_embedded_default(table):
    """Stage 1 clearly above chance (macro >= chance + 15 points); stage 2 measurably below it."""
    macro = table[table.task == "macro"].set_index(["stage", "variant", "eval_policy"])
    s1 = macro.loc[(1, "base", "causal")]
    s2 = macro.loc[(2, "base", "prefill_bidir")]
    assert s1.score >= s1.chance + 0.15, (s1.score, s1.chance)
    assert s2.score < s1.score - 0.02, (s2.score, s1.score)


def test_the_run_gives_the_expected_results_of_its_cpu_kind(finished):
    """The expected results are this tree's, per CPU kind (docs/expected_results.csv,
    written by `ablate expected --write` from a run): the suite's run equals its kind's row in
    every score and verdict (a claim the row lacks is unmeasured there). On every kind, the
    claims that hold on every CPU (the embedded finding: every task learned, a broad drop, 3B
    wins back part of it (prefix_recovers), 3B and 5B recover more than 3A, the side effects
    within their margin) must hold: `ablate expected`'s comparison, which fails with a line
    naming a claim of them that flipped or is not supported."""
    results = finished / "results"
    got = expected.measured(results)
    assert len([q for q in got if q.startswith("mask: learned/")]) == 5, sorted(got)
    kind = expected.cpu_kind(expected.run_hardware(results))
    rows = expected.load(ROOT / expected.EXPECTED_FILE)
    if kind not in rows:
        warnings.warn(
            f"CPU kind {kind} is unmeasured: {expected.EXPECTED_FILE} has {list(rows)}",
            stacklevel=1,
        )
    result = expected.compare(rows, kind, got)
    assert "mask: prefix_recovers" in expected.every_cpu()
    assert result.ok, "\n".join(result.lines(results))


def test_stage5_ran_with_its_own_stop_rules(finished):
    s5 = json.loads((finished / "results/finetune/5B/summary.json").read_text())
    s3 = json.loads((finished / "results/finetune/3B/summary.json").read_text())
    assert s5["policy"] == s3["policy"] == "prefix_bidir"  # 5B extends 3B
    assert s5["params"]["plateau_patience"] > 0 and s3["params"]["plateau_patience"] == 0
    assert s5["params"]["max_steps"] > s3["params"]["max_steps"]
    assert s5["stop"]["reason"] in ("plateau", "max_steps")


def test_most_model_jobs_start_warm(finished):
    # each model job's log says how it started (ablate.core.execution.warm): the first of each
    # environment cold, and the few that start while its server imports; the rest warm
    lines = [
        line
        for log in (finished / "results" / "logs").rglob("*.log")
        for line in log.read_text().splitlines()
        if line.startswith("[warm] started")
    ]
    warm = [line for line in lines if line.startswith("[warm] started warm")]
    assert len(warm) > len(lines) / 2, "\n".join(lines)


# --------------------------------------------------------------- staleness


def test_noop_rerun_does_nothing(finished, tmp_path):
    wd = tmp_path / "copy"  # a run takes Snakemake's lock: not in the shared folder
    shutil.copytree(finished, wd, symlinks=True)  # keeps mtimes: a finished run, as is
    r = snakemake(wd, "-c2", "results/recovery.csv")
    assert r.returncode == 0, r.stderr
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout + r.stderr
    full = snakemake(finished, "-n")
    assert planned_jobs(full.stdout) == set(), full.stdout


def test_stage3_edit_reruns_that_finetune_and_its_dependents_only(finished, tmp_path):
    def change(cfg):
        cfg["mask"]["finetune"]["variants"]["3A"]["learning_rate"] = 5e-4

    assert dry_run_edited(finished, change, tmp_path) == (
        finetune_jobs(["3A"]) | eval_jobs(["3A"]) | TABLE_JOBS | LOSS_PLOT
    )


def test_stage3_edit_inherited_by_stage5(finished, tmp_path):
    """5B extends 3B: a 3B hyperparameter is 5B's too; 3A, base and the probes stay."""

    def change(cfg):
        cfg["mask"]["finetune"]["variants"]["3B"]["weight_decay"] = 0.01

    assert dry_run_edited(finished, change, tmp_path) == (
        finetune_jobs(["3B", "5B"]) | eval_jobs(["3B", "5B"]) | TABLE_JOBS | LOSS_PLOT
    )


def test_shared_finetune_default_edit_never_touches_stages_1_2(finished, tmp_path):
    def change(cfg):
        cfg["mask"]["finetune"]["defaults"]["warmup_ratio"] = 0.1

    assert dry_run_edited(finished, change, tmp_path) == (
        finetune_jobs(VARIANTS) | eval_jobs(VARIANTS) | TABLE_JOBS | LOSS_PLOT
    )


def test_eval_edit_reruns_evals_and_table_never_finetunes(finished, tmp_path):
    def change(cfg):
        cfg["mask"]["eval"]["tasks"][0]["limit"] = 100

    assert dry_run_edited(finished, change, tmp_path) == eval_jobs(["base", *VARIANTS]) | TABLE_JOBS


# --------------------------------------------------------------- one stage, the report


def test_rerun_one_stage_from_cache_gives_the_same_numbers(finished, tmp_path):
    """The guide: `snakemake -c2 --force <stage output> --config run_cache=False` computes that
    stage alone again, with the same scores and every per-item loglikelihood bit for bit (one
    machine; the pretraining's bits: `test_pretraining_is_bit_identical`)."""
    wd = tmp_path / "copy"
    shutil.copytree(finished, wd, symlinks=True)  # keeps mtimes: a finished run, as is
    target = "results/eval/base/prefill_bidir/metrics.json"
    before = json.loads((wd / target).read_text())
    samples_before = pd.read_parquet(wd / "results/eval/base/prefill_bidir/samples.parquet")
    # the run cache (on by default) holds the job: off, the forced job is computed again
    r = snakemake(wd, "-c2", "--force", target, "--config", "run_cache=False")
    assert r.returncode == 0, r.stdout + r.stderr
    log = r.stdout + r.stderr
    assert "1 of 1 steps (100%) done" in log, log
    assert re.findall(r"^(?:local)?rule (\w+):", log, flags=re.M) == ["eval_model"], log
    after = json.loads((wd / target).read_text())
    assert after["run_id"] != before["run_id"]
    for task, res in before["tasks"].items():
        assert after["tasks"][task]["score"] == res["score"], task
    samples_after = pd.read_parquet(wd / "results/eval/base/prefill_bidir/samples.parquet")
    # bit for bit: an evaluation run twice on one machine gives the same bits
    assert samples_after.loglikelihood.tolist() == samples_before.loglikelihood.tolist()
    # the table is now older than one of its inputs: only it (and its figure) is stale
    assert planned_jobs(snakemake(wd, "-n").stdout) == TABLE_JOBS


#: The pretraining in the bit-identity test: 50 steps, a loss logged every 10 and an evaluation
#: half-way and at the end (the embedded default: 1000 steps, 50 and 500). What the test proves,
#: that a pretraining run twice on one machine gives the same bits (seeds, data order, kernels,
#: the loss's reductions, the evaluation between steps), holds or fails at every step alike: the
#: default's size only multiplies its cost.
BIT_IDENTICAL = {"max_steps": 50, "logging_steps": 10, "eval_steps": 25}


def test_pretraining_is_bit_identical(finished, tmp_path):
    """Two runs on one machine give the same bits: the pretraining of the base model (on the
    finished run's corpus, with its config but `BIT_IDENTICAL`'s steps) run twice (the
    second forced), the run cache off: weights and every logged loss, learning rate and grad
    norm compared bit for bit. The evaluation's bits: `test_rerun_one_stage_from_cache_gives_the_
    same_numbers` (the finished run's evaluation of the base model under the ablation, computed
    again). Cost: two short pretrainings (most of each is the job's start, not its steps)."""
    wd = tmp_path / "copy"
    shutil.copytree(finished, wd, symlinks=True)
    small = {"mask": {"model": {"embedded": {"pretrain": BIT_IDENTICAL}}}}
    (wd / "config/small_base.yaml").write_text(yaml.safe_dump(small))
    # the target before --forcerun, which takes every name after it as a rule
    args = (
        "results/model/base.json",
        "--configfile",
        "config/config.yaml",
        "config/small_base.yaml",
    )
    model = Path("results/model/base")
    for n, force in enumerate(((), ("--forcerun", "prepare_model"))):
        r = snakemake(wd, "-c2", *args, "--config", "run_cache=False", *force)
        assert r.returncode == 0, r.stdout + r.stderr
        jobs = re.findall(r"^(?:local)?rule (\w+):", r.stdout + r.stderr, flags=re.M)
        assert jobs == ["prepare_model"], jobs
        shutil.copytree(wd / model, tmp_path / f"run{n}", symlinks=True)
    first, second = tmp_path / "run0", tmp_path / "run1"
    summaries = [json.loads((run / "summary.json").read_text()) for run in (first, second)]
    assert summaries[0]["steps_done"] == BIT_IDENTICAL["max_steps"]  # not the default's
    assert [e["step"] for e in summaries[0]["curves"]["eval"]] == [25, 50]
    assert summaries[0]["provenance"]["run_id"] != summaries[1]["provenance"]["run_id"]
    weights = sorted(p.name for p in (first / "final").glob("*.safetensors"))
    assert weights, f"no weights in {first / 'final'}"
    for name in [*weights, "config.json"]:
        assert (second / "final" / name).read_bytes() == (first / "final" / name).read_bytes(), name
    assert summaries[0]["curves"] == summaries[1]["curves"]  # every loss, learning rate, grad norm


# Where the landing page's parts are in a real browser, in px from the window's top.
LANDING_PARTS = """
const caption = (start) => [...document.querySelectorAll('caption')]
    .find((c) => c.innerText.startsWith(start));
const box = (el) => el && el.getBoundingClientRect();
const rows = (start) => {
  const c = caption(start);
  return c ? [...c.closest('table').querySelectorAll('tbody tr')] : [];
};
const img = document.querySelector('img[alt$="scores.png"]');
return {
  height: window.innerHeight,
  mask: box(caption('mask study:')) && box(caption('mask study:')).top,
  claims: rows('mask study:').map((r) => [r.innerText, box(r).bottom]),
  bridge: rows('bridge study:').map((r) => [r.innerText, box(r).bottom]),
  plot: box(img) && [box(img).top, box(img).bottom, img.complete && img.naturalWidth,
                     box(img).width],
  recovery: box(caption('Recovery:')) && box(caption('Recovery:')).top,
};
"""


def landing_parts(report: Path, width: int, height: int) -> dict:
    """The report opened in Debian's Chromium, headless, in a window of this size (the README's
    test command installs chromium and chromium-driver; selenium drives them)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.set_window_size(width, height)
        # the window's outer size holds the browser's frame: size the page itself
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
        driver.get(report.as_uri())
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(LANDING_PARTS)["plot"])
        return driver.execute_script(LANDING_PARTS)
    finally:
        driver.quit()


def test_snakemake_report(finished, tmp_path):
    out = tmp_path / "report.html"
    r = snakemake(finished, "--report", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    html = out.read_text()
    for name in ("recovery.csv", "scores.png", "loss_curves.png", "plan.html", "mask.html"):
        assert name in html, name
    # the first screen is the result: both studies' headline claims, then the score plot, whole,
    # unscrolled and its smallest text at least 10 px (the plot scaled to 0.42 had 5 px text), on
    # windows of 1400x900 and larger; the recovery table below them
    smallest = float(Image.open(finished / "results/plots/scores.png").text[MIN_FONT_KEY])
    for width, height in ((1400, 900), (1440, 900), (1920, 1080)):
        parts = landing_parts(out, width, height)
        assert parts["height"] == height, parts
        claims, bridge = dict(parts["claims"]), dict(parts["bridge"])
        assert any(c.startswith("ablation_hurts") for c in claims), parts
        assert any(c.startswith("prefix_recovers_more") for c in claims), parts
        assert any(c.startswith("latent_beats_both") for c in bridge), parts
        assert 0 <= parts["mask"], parts
        assert all(b <= height for b in [*claims.values(), *bridge.values()]), parts
        top, bottom, natural, shown = parts["plot"]
        assert max(claims.values()) <= top < bottom <= height and natural, parts
        assert smallest * shown / natural >= 10, (smallest, shown, natural)
        assert bottom <= parts["recovery"], parts


def test_leaking_variant_is_refused_by_the_probe(finished, tmp_path):
    """A prefill_bidir finetune without allow_leakage: probe runs, the finetune refuses, named."""
    wd = tmp_path / "copy"
    shutil.copytree(finished, wd, symlinks=True)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg["mask"]["finetune"]["variants"]["3C"] = {"stage": 3, "policy": "prefill_bidir"}
    (wd / "config" / "leaky.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = snakemake(
        wd, "-c2", "results/finetune/3C/summary.json", "--configfile", "config/leaky.yaml"
    )
    log = r.stdout + r.stderr
    assert r.returncode != 0, log
    probe = json.loads((wd / "results/leakage/prefill_bidir.json").read_text())
    assert probe["policy"] == "prefill_bidir" and probe["leaks"] is True
    assert "leakage gate" in log and "allow_leakage: true" in log, log
    assert not (wd / "results/finetune/3C/summary.json").exists()


def test_checkpoint_without_manifest_is_refused_by_its_evaluation(finished, tmp_path):
    """A finetune's final/ whose manifest is gone (a copy cut short, a hand-made folder) is not
    scored: the evaluation fails before loading it, names the reason, and writes nothing."""
    wd = tmp_path / "copy"
    shutil.copytree(finished, wd, symlinks=True)
    (wd / "results/finetune/3A/final/checkpoint_manifest.json").unlink()
    target = "results/eval/3A/causal/metrics.json"
    r = snakemake(wd, "-c1", "--force", target)
    log = r.stdout + r.stderr + (wd / "results/logs/eval_model/3A.causal.log").read_text()
    assert r.returncode != 0, log
    assert "has no checkpoint_manifest.json: the checkpoint was never completed" in log, log
    assert not (wd / target).exists()
