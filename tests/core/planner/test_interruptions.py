"""Expected restarts on an interruptible (bid) setup (ablate.core.planner.interruptions)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import check_arithmetic, planner_config, row

from ablate.core import planner
from ablate.core.planner.inputs import Reference, parse_setups

REPO = Path(__file__).resolve().parents[3]


def test_interruptible_setup_adds_expected_restarts_at_the_bid(tmp_path):
    """A bid setup beside the on-demand one: the same jobs at the bid price, each with the
    expected restarts of the stated assumption (plan.interruptible.per_hour): a finetune loses
    half a checkpoint interval and the copy's lag per interruption, a job without checkpoints
    half its compute; too many interruptions and the finetunes get no estimate."""
    setups = [
        {"gpu": "H100 SXM"},
        {"gpu": "H100 SXM", "interruptible": True},
        {"gpu": "RTX 4090", "interruptible": True},
    ]
    config = planner_config("ministral3b.yaml", setups=setups)
    p = planner.make_plan(config, root=tmp_path, actuals=False)
    t, plan = p.table, config["plan"]
    check_arithmetic(t)
    rate, o = plan["interruptible"]["per_hour"] / 3600, plan["overheads"]
    assert rate > 0 and plan["interruptible"]["price_ratio"] == 0.5  # the stated defaults
    jobs = [j for j in t[t["setup"] == "1x H100 SXM"]["job"] if j != planner.TOTAL]
    shape = config["mask"]["finetune"]["defaults"]
    assert 0 < shape["save_steps"] < shape["max_steps"]  # the finetunes resume from copies
    for job in jobs:
        od, bid = row(t, "1x H100 SXM", job), row(t, "1x H100 SXM bid", job)
        assert od["est_job_s"] == bid["est_job_s"] and pd.isna(od["interruption_s"])
        base, compute = od["est_s"], od["compute_s"]
        if job.startswith("finetune/"):
            steps = config["mask"]["finetune"]["variants"]
            n = steps.get(job.split("/")[1], {}).get("max_steps", shape["max_steps"])
            copy = 3.429006336e9 * plan["train_state_bytes_per_param"] / 1e6 / o["transfer_mb_s"]
            restart = od["job_overhead_s"] + o["boot_s"] + o["setup_s"] + copy
            per = restart + compute * shape["save_steps"] / n / 2 + copy
            assert "half a checkpoint interval" in bid["note"]
        else:
            restart = od["job_overhead_s"] + od["rental_overhead_s"]
            per = restart + compute / 2
            assert "no checkpoint to resume from" in bid["note"]
        assert bid["interruption_s"] == pytest.approx(base / (1 - rate * per) - base, abs=0.2)
        assert bid["est_s"] == pytest.approx(base + bid["interruption_s"], abs=0.2)
    # the price: the snapshot's on-demand H100 x price_ratio; the 4090's stated min_bid
    od, bid = row(t, "1x H100 SXM", planner.TOTAL), row(t, "1x H100 SXM bid", planner.TOTAL)
    assert bid["price_per_hour"] == pytest.approx(od["price_per_hour"] * 0.5)
    assert "plan.interruptible.price_ratio" in bid["price_source"]
    assert row(t, "1x RTX 4090 bid", planner.TOTAL)["price_per_hour"] == 0.31
    assert bid["interruption_s"] > 0 and bid["est_s"] > od["est_s"]
    assert bid["est_cost_usd"] < od["est_cost_usd"]  # the trade-off at the default rate
    assert "interruptible instance" in bid["note"]
    line = next(x for x in planner.summary_lines(p) if "1x H100 SXM bid:" in x)
    assert "expected restarts after being outbid" in line
    # a higher rate costs more time; past one interruption per restart's worth, no estimate
    config["plan"]["interruptible"]["per_hour"] = 1.0
    t1 = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert row(t1, "1x H100 SXM bid", planner.TOTAL)["interruption_s"] > 5 * bid["interruption_s"]
    config["plan"]["interruptible"]["per_hour"] = 10.0
    t10 = planner.make_plan(config, root=tmp_path, actuals=False).table
    ft = row(t10, "1x H100 SXM bid", "finetune/3A")
    assert pd.isna(ft["est_s"]) and "never finishes" in ft["note"]
    assert pd.isna(row(t10, "1x H100 SXM bid", planner.TOTAL)["est_s"])
    # the vast profile's bid is what the executor pays
    prof = tmp_path / "vast.yaml"
    prof.write_text("ablate-vast-max-price: 3.0\nablate-vast-bid: 0.7\n")
    config["plan"].update(
        vast_profile=str(prof), interruptible={"per_hour": 0.1, "price_ratio": 0.5}
    )
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert row(t, "1x H100 SXM bid", planner.TOTAL)["price_per_hour"] == 0.7
    assert "ablate-vast-bid" in row(t, "1x H100 SXM bid", planner.TOTAL)["price_source"]
    ref = Reference.load(REPO / "config" / "gpu_measurements.yaml")
    for bad in ({"gpu": "H100 SXM", "count": 8}, {"gpu": "cpu"}):
        with pytest.raises(planner.PlanError, match="interruptible is a rented one-GPU setup"):
            parse_setups({"setups": [bad | {"interruptible": True}]}, ref)
