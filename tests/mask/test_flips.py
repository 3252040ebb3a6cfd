"""`ablate flips A B`: the items whose correctness differs between two evaluations, with the
choices each picked, and the counts per task."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ablate.mask import flips


def evaluation(
    folder: Path, picks: dict[str, list[int]], metric: str = "acc", data: str | None = "v1"
) -> Path:
    """An evaluation folder: two choices per doc, gold 0, the doc's pick per task as given; its
    docs' fingerprint names ``data`` (None: none recorded)."""
    rows, tasks = [], {}
    for task, chosen in picks.items():
        for doc_id, pick in enumerate(chosen):
            for choice in (0, 1):
                right = float(pick == 0)
                rows.append(
                    dict(
                        task=task,
                        doc_id=doc_id,
                        choice=choice,
                        choice_text=f"{task}-{doc_id}-{choice}",
                        loglikelihood=-1.0 if choice == pick else -2.0,
                        predicted=pick,
                        predicted_norm=1 - pick,
                        gold=0,
                        acc=right,
                        acc_norm=1.0 - right,
                    )
                )
        score = sum(p == 0 for p in chosen) / len(chosen)
        if metric == "acc_norm":
            score = 1 - score
        tasks[task] = {"headline_metric": metric, "score": score, "n": len(chosen)}
        if data is not None:
            tasks[task]["fingerprint"] = f"{task}-{len(chosen)}-{data}".ljust(64, "0")
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "samples.parquet")
    (folder / "metrics.json").write_text(json.dumps({"tasks": tasks}))
    return folder


def test_counts_and_flipped_items_per_task(tmp_path):
    a = evaluation(tmp_path / "a", {"t1": [0, 0, 1, 1], "t2": [0, 1]})
    b = evaluation(tmp_path / "b", {"t1": [0, 1, 0, 1], "t2": [1, 1]})
    flipped, counts = flips.compare(a, b / "metrics.json")
    assert counts.to_dict("records") == [
        dict(task="t1", n=4, lost=1, gained=1, both_right=1, both_wrong=1, net=0),
        dict(task="t2", n=2, lost=1, gained=0, both_right=0, both_wrong=1, net=-1),
    ]
    assert flipped[["task", "doc_id", "a_right", "b_right"]].values.tolist() == [
        ["t1", 1, 1.0, 0.0],
        ["t1", 2, 0.0, 1.0],
        ["t2", 0, 1.0, 0.0],
    ]
    first = flipped.iloc[0]
    assert (first.gold_text, first.a_pick_text, first.b_pick_text) == ("t1-1-0", "t1-1-0", "t1-1-1")
    assert first.a_pick_ll == first.b_pick_ll == -1.0


def test_the_headline_metric_decides_the_pick(tmp_path):
    # under acc_norm the picks are the other choices: what was right under acc is wrong
    a = evaluation(tmp_path / "a", {"t": [0, 1]}, metric="acc_norm")
    b = evaluation(tmp_path / "b", {"t": [1, 1]}, metric="acc_norm")
    flipped, counts = flips.compare(a, b)
    assert counts.to_dict("records")[0] == dict(
        task="t", n=2, lost=0, gained=1, both_right=1, both_wrong=0, net=1
    )
    assert flipped.a_pick_text.tolist() == ["t-0-1"] and flipped.b_pick_text.tolist() == ["t-0-0"]


def test_cli_lists_flips_and_writes_them_all(tmp_path, capsys):
    a = evaluation(tmp_path / "a", {"t1": [0, 0, 0], "t2": [1]})
    b = evaluation(tmp_path / "b", {"t1": [1, 1, 1], "t2": [0]})
    out = tmp_path / "flips.csv"
    assert flips.main([str(a), str(b), "--limit", "1", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "t1 0 (lost): gold 't1-0-0'; A picked 't1-0-0' (ll -1.000), B picked 't1-0-1'" in text
    assert "... 3 more" in text and len(pd.read_csv(out)) == 4
    assert flips.main([str(a), str(b), "--task", "t2"]) == 0
    assert "t2 0 (gained)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        flips.main([str(a), str(tmp_path / "nowhere")])
    assert exc.value.code == 2 and "nowhere/metrics.json does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "limit, says", [("-5", "-5 is below 0: give 0 or more"), ("two", "'two' is not a whole number")]
)
def test_a_limit_that_is_no_count_is_refused(tmp_path, capsys, limit, says):
    """``--limit -5`` was taken: ``head(-5)`` listed all but the last five flips, and counted
    five more than there were ("... N more")."""
    a = evaluation(tmp_path / "a", {"t1": [0]})
    with pytest.raises(SystemExit) as exc:
        flips.main([str(a), str(a), "--limit", limit])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.endswith(f"error: argument --limit: {says}\n"), err


def test_evaluations_of_different_data_are_refused(tmp_path, capsys):
    """Items pair by doc_id: doc 3 of another data file (or hub revision, or limit) is another
    question, and the report was confident all the same."""
    a = evaluation(tmp_path / "a", {"t1": [0, 0, 1, 1], "t2": [0, 1]})
    b = evaluation(tmp_path / "b", {"t1": [0, 1, 0, 1]}, data="v2")
    with pytest.raises(flips.FlipsError) as info:
        flips.compare(a, b)
    message = str(info.value)
    assert message.startswith(
        f"{a}/metrics.json and {b}/metrics.json scored different data for task t1 (4 and 4 docs, "
        "fingerprints t1-4-v100000 and t1-4-v200000): "
    ), message
    assert "\n" not in message
    with pytest.raises(SystemExit) as exc:
        flips.main([str(a), str(b)])
    assert exc.value.code == 2 and "scored different data for task t1" in capsys.readouterr().err
    # fewer docs (a limit) of the same data: other docs, refused too
    c = evaluation(tmp_path / "c", {"t1": [0, 1]})
    with pytest.raises(flips.FlipsError, match="2 and 4 docs"):
        flips.compare(c, a)
    # the differing task left out with --task, the others compare
    d = evaluation(tmp_path / "d", {"t1": [1, 1, 1, 1], "t2": [1, 1]})
    metrics = json.loads((d / "metrics.json").read_text())
    metrics["tasks"]["t1"]["fingerprint"] = "0" * 64
    (d / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(flips.FlipsError, match="different data for task t1"):
        flips.compare(a, d)
    assert flips.compare(a, d, ["t2"])[1].to_dict("records") == [
        dict(task="t2", n=2, lost=1, gained=0, both_right=0, both_wrong=1, net=-1)
    ]
    assert flips.main([str(a), str(d), "--task", "t2"]) == 0


def test_an_evaluation_without_a_data_fingerprint_is_refused(tmp_path):
    a = evaluation(tmp_path / "a", {"t": [0, 1]})
    b = evaluation(tmp_path / "b", {"t": [1, 1]}, data=None)
    with pytest.raises(flips.FlipsError, match=f"^{b}/metrics.json records no fingerprint"):
        flips.compare(a, b)
