"""The plan's summary lines, plan.csv and its HTML view (ablate.core.planner.output)."""

from __future__ import annotations

import re

import pandas as pd
from helpers import planner_config

from ablate.core import planner


def test_a_failed_planner_still_writes_a_plan(tmp_path):
    """The rule's last resort (workflow/scripts/plan.py): a plan of one row that says why."""
    p = planner.failed_plan("the planner failed: KeyError: 'x' (see the log)")
    planner.write_plan(p, tmp_path / "plan.csv", tmp_path / "plan.html")
    t = pd.read_csv(tmp_path / "plan.csv")
    assert list(t.columns) == planner.COLUMNS and t["note"].tolist() == [p.info["failed"]]
    assert planner.summary_lines(p) == [f"no plan: {p.info['failed']}"]
    assert "KeyError" in (tmp_path / "plan.html").read_text()


def test_the_setups_are_listed_fastest_first_and_weeks_in_days(tmp_path):
    """`ablate plan` of the real study on a machine without a GPU listed its local setup first:
    "1x cpu: 5318:30:20 total" (221 days, read as hours). Now the fastest setup comes first, a
    total of two days or more says its days, and a setup without a total comes last."""
    config = planner_config("ministral3b.yaml", setups=[{"gpu": "cpu"}, {"gpu": "H100 SXM"}])
    lines = planner.summary_lines(planner.make_plan(config, root=tmp_path, actuals=False))
    totals = [x.strip() for x in lines if " total" in x]
    assert [x.split(":")[0] for x in totals] == ["1x H100 SXM", "1x cpu"], totals
    assert re.fullmatch(r"1x cpu: \d{4,}:\d\d:\d\d total \(\d+ days\), no price", totals[1]), totals
