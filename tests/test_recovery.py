"""The recovery table: formulas, shape, reference checks, CLI (no model needed)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from ablate.mask import recovery, study


def metrics(run_id, policy, scores, chance=0.25, n=100):
    tasks = {
        t: {
            "headline_metric": "acc_norm",
            "score": s,
            "acc_norm": s,
            "acc_norm_stderr": 0.01,
            "n": n,
            "chance": chance,
        }
        for t, s in scores.items()
    }
    macro = sum(scores.values()) / len(scores)
    return {
        "run_id": run_id,
        "policy": policy,
        "tasks": tasks,
        "macro": {"score": macro, "chance": chance, "n_tasks": len(scores)},
        "provenance": {"run_id": run_id},
    }


@pytest.fixture
def entries():
    return [
        dict(
            stage=1,
            variant="base",
            train_policy=None,
            metrics=metrics("r1", "causal", {"a": 0.8, "b": 0.6}),
        ),
        dict(
            stage=2,
            variant="base",
            train_policy=None,
            metrics=metrics("r2", "prefill_bidir", {"a": 0.4, "b": 0.6}),
        ),
        dict(
            stage=4,
            variant="3B",
            train_policy="prefix_bidir",
            train_run_id="t3b",
            metrics=metrics("r3", "prefill_bidir", {"a": 0.7, "b": 0.5}),
        ),
    ]


def test_formulas_and_shape(entries):
    df = recovery.build_recovery(entries)
    assert list(df.columns) == recovery.COLUMNS
    assert len(df) == 3 * 3  # (2 tasks + macro) x 3 evaluations
    row = df[(df.stage == 4) & (df.task == "a")].iloc[0]
    assert row.score == pytest.approx(0.7)
    assert row.delta_vs_stage1 == pytest.approx(0.7 - 0.8)
    assert row.retention_vs_stage1 == pytest.approx(0.7 / 0.8)
    assert row.gain_vs_stage2 == pytest.approx(0.7 - 0.4)
    assert row.recovered_fraction == pytest.approx((0.7 - 0.4) / (0.8 - 0.4))
    assert row.run_id == "r3" and row.train_run_id == "t3b"
    assert row.train_policy == "prefix_bidir" and row.eval_policy == "prefill_bidir"
    # task b lost nothing under the ablation: recovered fraction undefined, not infinite.
    assert math.isnan(df[(df.stage == 4) & (df.task == "b")].iloc[0].recovered_fraction)
    macro = df[(df.stage == 4) & (df.task == "macro")].iloc[0]
    assert macro.score == pytest.approx(0.6)
    assert macro.recovered_fraction == pytest.approx((0.6 - 0.5) / (0.7 - 0.5))
    assert macro.n == 200 and macro.metric == "mean_headline"
    base = df[df.stage == 1]
    assert (base.train_policy == recovery.NO_TRAINING).all()
    s1 = df[(df.stage == 1) & (df.task == "a")].iloc[0]
    assert s1.recovered_fraction == pytest.approx(1.0)
    assert s1.retention_vs_stage1 == pytest.approx(1.0)
    s2 = df[(df.stage == 2) & (df.task == "a")].iloc[0]
    assert s2.recovered_fraction == pytest.approx(0.0)


def test_macro_rows_last_and_stages_ordered(entries):
    df = recovery.build_recovery(list(reversed(entries)))
    assert list(df.stage) == [1, 1, 1, 2, 2, 2, 4, 4, 4]
    assert list(df.task[:3]) == ["a", "b", "macro"]


def test_needs_exactly_one_reference(entries):
    with pytest.raises(recovery.RecoveryError, match="stage-2"):
        recovery.build_recovery([entries[0], entries[2]])
    dup = dict(entries[0], metrics=metrics("r9", "prefix_bidir", {"a": 0.8, "b": 0.6}))
    with pytest.raises(recovery.RecoveryError, match="exactly one stage-1"):
        recovery.build_recovery(entries + [dup])


def test_task_without_reference(entries):
    extra = dict(entries[2], metrics=metrics("r4", "causal", {"a": 0.7, "c": 0.5}))
    with pytest.raises(recovery.RecoveryError, match="task\\(s\\) c"):
        recovery.build_recovery(entries + [extra])


def test_bad_metrics_named(tmp_path, entries):
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"run_id": "x", "policy": "causal", "tasks": {}}))
    with pytest.raises(recovery.RecoveryError, match=r"metrics.json lacks the key 'macro'"):
        recovery.build_recovery([dict(stage=1, variant="base", metrics=str(bad))])
    with pytest.raises(recovery.RecoveryError, match="does not exist"):
        recovery.build_recovery([dict(stage=1, variant="base", metrics=str(tmp_path / "no"))])


def test_cli_writes_csv_and_parquet(tmp_path, entries, capsys):
    listed = []
    for i, e in enumerate(entries):
        p = tmp_path / f"m{i}.json"
        p.write_text(json.dumps(e["metrics"]))
        listed.append(dict(e, metrics=str(p)))
    (tmp_path / "entries.json").write_text(json.dumps(listed))
    csv, pq = tmp_path / "out" / "r.csv", tmp_path / "out" / "r.parquet"
    rc = recovery.main(
        ["--entries", str(tmp_path / "entries.json"), "--csv", str(csv), "--parquet", str(pq)]
    )
    assert rc == 0
    a, b = pd.read_csv(csv), pd.read_parquet(pq)
    assert list(a.columns) == recovery.COLUMNS == list(b.columns)
    assert len(a) == len(b) == 9
    assert a.metrics_file.str.endswith(".json").all()
    assert "stage 4" in capsys.readouterr().out


def test_entries_from_results_derive_stages(tmp_path, entries):
    # the stages come from the study's job list, as the recovery rule's params pass them
    config = {
        "results": str(tmp_path),
        "model": {"source": "pretrained"},
        "data": {"source": "hub"},
        "eval": {"ablated_policy": "prefill_bidir"},
        "finetune": {
            "defaults": {},
            "variants": {
                "3B": {"stage": 3, "policy": "prefix_bidir"},
                "5B": {"stage": 5, "extends": "3B"},
            },
        },
    }
    labels = study.recovery_labels(study.jobs(config))
    files = []
    for model, policy, e in [
        ("base", "causal", entries[0]),
        ("base", "prefill_bidir", entries[1]),
        ("3B", "prefill_bidir", entries[2]),
        ("5B", "causal", entries[2]),
    ]:
        p = tmp_path / "eval" / model / policy / "metrics.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(e["metrics"]))
        files.append(p)
    summary = tmp_path / "finetune" / "3B" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"provenance": {"run_id": "train-3b"}}))
    got = recovery.entries_from_results(files, labels, [summary])
    assert [(e["stage"], e["variant"], e["train_policy"]) for e in got] == [
        (1, "base", None),
        (2, "base", None),
        (4, "3B", "prefix_bidir"),
        (5, "5B", "prefix_bidir"),
    ]
    assert got[2]["train_run_id"] == "train-3b" and got[3]["train_run_id"] is None
    with pytest.raises(recovery.RecoveryError, match="no evaluation of the study's job list"):
        recovery.entries_from_results(
            [tmp_path / "eval" / "9Z" / "causal" / "metrics.json"], labels
        )
