"""A results tree against a base tree (ablate.core.reports.deltas), as `ablate runs` shows it: each
score that moved with its paired 95 % interval from the per-sample records both trees hold (the
mask study's evaluations, the bridge study's runs), and the cell that says why there is none.
Small trees written here with the project's own writers (tests/core/tree_records.py); no
pipeline run."""

from __future__ import annotations

from tree_records import by_tree, record, table

from ablate import cli
from ablate.bridge import layout as bridge_layout
from ablate.core.outputs.io import write_json
from ablate.core.reports import runs


def test_each_delta_has_its_paired_ci_from_both_trees_per_sample_records(tmp_path):
    """A score that moved against the base gets the paired 95 % interval of the claims'
    statistics, over the items both trees' evaluations scored (the experiment's evaluations that
    are the base's read from the base's tree); a score whose per-sample records one tree lacks,
    or whose evaluations scored different items, says so in its cell, never a bare number."""
    import numpy as np
    import tree_records
    from fake_evals import correct_items, shift
    from tree_records import evaluations

    from ablate.core.reports import stats

    base, exp = tmp_path / "results", tmp_path / "results/exp/lr"
    a, b = correct_items(60, 40, seed=1), correct_items(60, 30, seed=2)
    ablated = {"a": correct_items(60, 20, seed=3), "b": correct_items(60, 25, seed=4)}
    evaluations(
        base,
        {
            ("base", "causal"): {"a": a, "b": b},
            ("base", "prefill_bidir"): ablated,
            ("3A", "prefill_bidir"): {"a": ablated["a"], "b": ablated["b"]},
        },
    )
    mine = {"a": shift(ablated["a"], 6, seed=5), "b": shift(ablated["b"], -2, seed=6)}
    evaluations(exp, {("3A", "prefill_bidir"): mine}, shared=base)
    record(base, "finetune/3A/summary.json", {})  # a results tree: one record at least
    # made from the base as it is (experiments.finished: its base records' run ids, none here)
    definition = {"name": "lr", "base": "results", "changes": [], "shared": [], "own": []}
    write_json(exp / "experiment.json", {**definition, "base_runs": {}})
    got = runs.table_rows(tmp_path, "results")

    def ci(old, new):  # the interval of the raw arrays, paired by position, tasks as strata
        r = stats.paired(old, new, strata=["a"] * 60 + ["b"] * 60 if len(old) > 60 else None)
        return f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]"

    macro = ci(np.r_[ablated["a"], ablated["b"]], np.r_[mine["a"], mine["b"]])
    row = by_tree(got)["results/exp/lr"]
    assert row["vs base"] == [
        f"mask: 3A under prefill_bidir +0.033 {macro} (0.375 -> 0.408)",
        f"mask: 3A under prefill_bidir: a +0.100 {ci(ablated['a'], mine['a'])} (0.333 -> 0.433)",
        f"mask: 3A under prefill_bidir: b -0.033 {ci(ablated['b'], mine['b'])} (0.417 -> 0.383)",
    ]
    assert row["headline vs base"] == row["vs base"][:1]
    # the experiment's samples gone: its cells say the interval cannot be computed
    (exp / "eval/3A/prefill_bidir/samples.parquet").unlink()
    row = by_tree(runs.table_rows(tmp_path, "results"))["results/exp/lr"]
    assert row["vs base"][0] == (
        "mask: 3A under prefill_bidir +0.033 [CI: no per-sample records] (0.375 -> 0.408)"
    )
    # the CSV, markdown and HTML outputs carry the cells as the table has them
    csv_path, md, html = tmp_path / "runs.csv", tmp_path / "runs.md", tmp_path / "runs.html"
    argv = ["runs", "--root", str(tmp_path), "--csv", str(csv_path), "--md", str(md)]
    assert cli.main([*argv, "--html", str(html)]) == 0
    for path in (csv_path, md, html):
        assert "3A under prefill_bidir +0.033 [CI: no per-sample records]" in path.read_text()
    # evaluations of different items: no pairing, and the cell says why
    fewer = {"a": mine["a"][:50], "b": mine["b"][:50]}
    evaluations(exp, dict.fromkeys(tree_records.STAGES, fewer))
    row = by_tree(runs.table_rows(tmp_path, "results"))["results/exp/lr"]
    (line,) = [x for x in row["vs base"] if x.startswith("mask: 3A under prefill_bidir +")]
    assert "[CI: the two evaluations cover different items]" in line


def test_a_bridge_entrys_final_delta_pairs_its_runs_samples_and_its_peak_has_none(tmp_path):
    """The bridge study's final accuracy of an entry pairs the per-item correctness of the two
    trees' runs (each summary row's run_id: its samples.parquet); a peak has no per-sample
    records, and its cell says so."""
    import pandas as pd

    from ablate.core.reports import stats

    def tree(path, run_id, correct):
        record(path, "bridge/data/provenance.json", {}, host=run_id)  # its own run
        final = sum(correct) / len(correct)
        row = {"entry": "1a", "run_id": run_id, "peak": str(final + 0.1), "final": str(final)}
        table(path / bridge_layout.PATTERNS["summary"], [row])
        samples = path / bridge_layout.PATTERNS["run_samples"].format(run_id=run_id)
        samples.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"id": range(len(correct)), "correct": correct}).to_parquet(samples)

    old, new = [1, 0, 0, 1, 0] * 8, [1, 1, 0, 1, 0] * 8
    tree(tmp_path / "results", "r1", old)
    tree(tmp_path / "other", "r2", new)
    r = stats.paired(old, new)
    row = by_tree(runs.table_rows(tmp_path, "results"))["other"]
    assert row["vs base"] == [
        f"bridge: 1a final +0.200 [{r.ci_low:+.3f}, {r.ci_high:+.3f}] (0.400 -> 0.600)",
        "bridge: 1a peak +0.200 [CI: no per-sample records] (0.500 -> 0.700)",
    ]
