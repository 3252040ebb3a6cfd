"""The forecast table (ablate.core.planner.estimate): rows that say what they lack, jobs that do not
fit a setup's memory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import EMBEDDED_RUN, SETUPS, check_arithmetic, planner_config, row

from ablate.core import planner

REPO = Path(__file__).resolve().parents[3]


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
