"""Per-item correctness of one evaluation (ablate.mask.items), on hand-made samples: one value per
(task, doc_id) of each task's headline metric, and the refusals of samples that do not belong to
the metrics (a column, a task or an item value missing, a mean other than the task's score)."""

from __future__ import annotations

import pandas as pd
import pytest

from ablate.mask import items


def samples() -> pd.DataFrame:
    """Two choices per doc (lm-eval's rows), task a's docs 0 and 1, task b's doc 0."""
    docs = [("a", 0, 1.0, 0.0), ("a", 1, 0.0, 1.0), ("b", 0, 1.0, 1.0)]
    rows = [
        {"task": t, "doc_id": d, "choice": c, "acc": acc, "acc_norm": norm}
        for t, d, acc, norm in docs
        for c in (0, 1)
    ]
    return pd.DataFrame(rows)


METRICS = {
    "tasks": {
        "a": {"headline_metric": "acc_norm", "score": 0.5},
        "b": {"headline_metric": "acc", "score": 1.0},
    }
}


def test_one_value_per_item_of_each_tasks_headline_metric():
    correct = items.correctness(METRICS, samples())
    assert correct.index.names == list(items.ITEM_ID) and correct.name == "correct"
    assert correct.to_dict() == {("a", 0): 0.0, ("a", 1): 1.0, ("b", 0): 1.0}


def test_load_reads_a_file_and_passes_a_frame(tmp_path):
    df = samples()
    assert items.load(df) is df
    df.to_parquet(tmp_path / "samples.parquet")
    pd.testing.assert_frame_equal(items.load(tmp_path / "samples.parquet"), df)
    with pytest.raises(items.ItemsError, match="samples file .*nothing.parquet does not exist"):
        items.load(tmp_path / "nothing.parquet")


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda m, s: (m, s.drop(columns="acc_norm")), "x.parquet lacks the column"),
        (lambda m, s: (m, s[s.task == "a"]), "x.parquet has no items of task 'b'"),
        (lambda m, s: (m, s.assign(acc=0.5)), "task 'b' has acc values other than 0/1"),
        (
            lambda m, s: ({"tasks": {**m["tasks"], "b": {**m["tasks"]["b"], "score": 0.9}}}, s),
            "task 'b' mean acc 1.000000 differs from the metrics' score 0.900000",
        ),
    ],
)
def test_samples_that_do_not_belong_to_the_metrics_are_refused(edit, says):
    metrics, df = edit(METRICS, samples())
    with pytest.raises(items.ItemsError, match=says):
        items.correctness(metrics, df, where="x.parquet")
