"""The recovery table: formulas, shape, reference checks, CLI (no model needed)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from ablate.mask import recovery


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


def significant_digits(number: str) -> int:
    """Digits of a written float, without sign, point, exponent and leading zeros."""
    mantissa = number.lower().split("e")[0]
    return len(mantissa.replace("-", "").replace(".", "").lstrip("0"))


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
    # the CSV a person reads: 6 significant digits (no 0.9530000000000001); parquet exact
    floats = list(b.select_dtypes("float").columns)
    assert max(significant_digits(repr(v)) for v in b[floats].stack()) > 6  # dust to round away
    written = pd.read_csv(csv, dtype=str)[floats].stack()  # the text, not floats read back
    assert max(significant_digits(v) for v in written) <= 6
    pd.testing.assert_frame_equal(a[floats], b[floats], rtol=1e-5, check_dtype=False)
    assert a.metrics_file.str.endswith(".json").all()
    assert "stage 4" in capsys.readouterr().out


def test_entries_from_results_derive_stages(tmp_path, entries):
    # the stages come from the study's job list, as the recovery rule's params pass them
    from fake_evals import labels as job_labels

    variants = {"3B": {"stage": 3, "policy": "prefix_bidir"}, "5B": {"stage": 5, "extends": "3B"}}
    labels = job_labels(tmp_path, variants)
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


# --------------------------------------------------------------- tests and honest blanks


@pytest.fixture
def paired_entries():
    """Stage 1 / 2 / 4 with per-item results: task a drops by 0.3 and 3B gets 0.15 back; task b
    loses 2 items of 200 (within noise); 3B under causal loses 0.06 on a (a side effect)."""
    from fake_evals import correct_items, evaluation, shift

    s1 = {"a": correct_items(200, 160, 0), "b": correct_items(200, 120, 1)}
    s2 = {"a": shift(s1["a"], -60, 2), "b": shift(s1["b"], -2, 3)}
    ft_abl = {"a": shift(s2["a"], 30, 4), "b": s2["b"]}
    ft_causal = {"a": shift(s1["a"], -12, 5), "b": s1["b"]}
    out = []
    for stage, variant, policy, per_task in [
        (1, "base", "causal", s1),
        (2, "base", "prefill_bidir", s2),
        (4, "3B", "prefill_bidir", ft_abl),
        (4, "3B", "causal", ft_causal),
    ]:
        m, s = evaluation(f"r-{variant}-{policy}", policy, per_task)
        out.append(dict(stage=stage, variant=variant, metrics=m, samples=s))
    out[2]["train_policy"] = out[3]["train_policy"] = "prefix_bidir"
    return out


def pick(df, stage, task, policy=None):
    sel = (df.stage == stage) & (df.task == task)
    if policy:
        sel &= df.eval_policy == policy
    return df[sel].iloc[0]


def test_paired_tests_per_row(paired_entries):
    from ablate.core.reports import stats

    df = recovery.build_recovery(paired_entries)
    assert list(df.columns) == recovery.COLUMNS
    assert (df.test == "exact McNemar").all()
    ft = pick(df, 4, "a", "prefill_bidir")
    assert ft.gain_vs_stage2 == pytest.approx(0.15)
    assert ft.gain_vs_stage2_ci_low < 0.15 < ft.gain_vs_stage2_ci_high
    assert ft.gain_vs_stage2_ci_low > 0 and ft.p_vs_stage2 < 1e-6 and not ft.within_noise
    assert ft.delta_vs_stage1 == pytest.approx(-0.15) and ft.delta_vs_stage1_ci_high < 0
    assert ft.recovered_fraction == pytest.approx(0.5)
    # the same numbers as the paired test on the items themselves
    s2, mine = paired_entries[1]["samples"], paired_entries[2]["samples"]
    first = lambda s: s[s.task == "a"].drop_duplicates("doc_id").acc_norm.to_numpy()  # noqa: E731
    direct = stats.paired(first(s2), first(mine))
    assert (ft.p_vs_stage2, ft.gain_vs_stage2_ci_low) == (direct.p_value, direct.ci_low)
    # macro: a paired test over every item, and a stderr
    macro = pick(df, 4, "macro", "prefill_bidir")
    assert macro.gain_vs_stage2 == pytest.approx(0.075) and macro.p_vs_stage2 < 1e-6
    assert macro.stderr == pytest.approx(math.hypot(*_task_stderrs(df)) / 2)
    assert (df.stderr.notna()).all()
    # references: the drop tested on the stage-2 row; no test of a row against itself
    s2row = pick(df, 2, "a")
    assert s2row.delta_vs_stage1 == pytest.approx(-0.3) and not s2row.within_noise
    assert math.isnan(s2row.p_vs_stage2) and s2row.gain_vs_stage2 == 0
    s1row = pick(df, 1, "a")
    assert math.isnan(s1row.p_vs_stage1) and pd.isna(s1row.within_noise)
    assert s1row.p_vs_stage2 == s2row.p_vs_stage1


def _task_stderrs(df):
    return list(
        df[(df.stage == 4) & (df.eval_policy == "prefill_bidir") & (df.task != "macro")].stderr
    )


def test_drop_within_noise_gives_no_recovered_fraction(paired_entries):
    df = recovery.build_recovery(paired_entries)
    for stage, policy in [(1, None), (2, None), (4, "prefill_bidir")]:
        row = pick(df, stage, "b", policy)
        assert math.isnan(row.recovered_fraction), (stage, row)
        assert "within noise" in row.note and "nothing to recover" in row.note
    assert pick(df, 2, "b").within_noise  # 2 items of 200: inside the noise
    assert pick(df, 2, "b").delta_vs_stage1 == pytest.approx(-0.01)


def test_causal_rows_carry_no_recovery(paired_entries):
    df = recovery.build_recovery(paired_entries)
    causal = df[(df.stage == 4) & (df.eval_policy == "causal")]
    assert causal.recovered_fraction.isna().all() and causal.gain_vs_stage2.isna().all()
    assert causal.p_vs_stage2.isna().all()
    assert causal.note.str.contains("evaluated under causal").all()
    # what they do carry: the side effect against stage 1, tested
    a = pick(df, 4, "a", "causal")
    assert a.delta_vs_stage1 == pytest.approx(-0.06) and a.p_vs_stage1 < 0.001
    assert not a.within_noise
    assert pick(df, 4, "b", "causal").within_noise  # unchanged items


def test_float_rounding_is_not_a_drop():
    """Stage 1 and 2 differing only by float rounding gave recovered_fraction 9e14."""
    s1 = metrics("r1", "causal", {"a": 0.1, "b": 0.30000000000000004})
    s2 = metrics("r2", "prefill_bidir", {"a": 0.1, "b": 0.3})
    s1["macro"]["score"], s2["macro"]["score"] = 0.20000000000000004, 0.19999999999999998
    ft = metrics("r3", "prefill_bidir", {"a": 0.5, "b": 0.5})
    df = recovery.build_recovery(
        [
            dict(stage=1, variant="base", metrics=s1),
            dict(stage=2, variant="base", metrics=s2),
            dict(stage=4, variant="3B", train_policy="prefix_bidir", metrics=ft),
        ]
    )
    for task in ("b", "macro"):
        s2row = pick(df, 2, task)
        assert s2row.delta_vs_stage1 == 0.0 and s2row.p_vs_stage1 == 1.0 and s2row.within_noise
        row = pick(df, 4, task)
        assert math.isnan(row.recovered_fraction), row
        assert "did not lower" in row.note
    assert not (df.recovered_fraction.abs() > 1).any()  # no 9e14 anywhere
    # without per-item results the test is on the stderrs, and says so
    assert (df.test == "unpaired z from stderrs").all()


def test_samples_of_another_evaluation_are_refused(paired_entries):
    wrong = dict(paired_entries[2], samples=paired_entries[3]["samples"])
    with pytest.raises(recovery.RecoveryError, match="differs from the metrics' score"):
        recovery.build_recovery(paired_entries[:2] + [wrong])


def test_entries_from_results_find_samples(tmp_path, paired_entries):
    from fake_evals import labels, write

    files, samples = [], []
    for model, policy, e in [
        ("base", "causal", paired_entries[0]),
        ("base", "prefill_bidir", paired_entries[1]),
        ("3B", "prefill_bidir", paired_entries[2]),
    ]:
        d = write(tmp_path, model, policy, e["metrics"], e["samples"])
        files.append(d / "metrics.json")
        samples.append(d / "samples.parquet")
    variants = {"3B": {"stage": 3, "policy": "prefix_bidir"}}
    got = recovery.entries_from_results(files, labels(tmp_path, variants), (), samples[::-1])
    assert [e["samples"] for e in got] == [str(s) for s in samples]
    df = recovery.build_recovery(got)
    assert (df.test == "exact McNemar").all() and df.samples_file.str.endswith(".parquet").all()
