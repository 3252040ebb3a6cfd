"""The planner's command line (ablate.core.planner.cli, ``ablate plan``): the files it writes and
where."""

from __future__ import annotations

import shutil

import pandas as pd
from helpers import MINISTRAL_RUN

from ablate.core import planner


def test_cli_writes_csv_and_html(tmp_path, capsys):
    out, html = tmp_path / "plan.csv", tmp_path / "plan.html"
    rc = planner.main(
        [
            "--config",
            "config/ministral3b.yaml",
            "--root",
            str(MINISTRAL_RUN),
            "--out",
            str(out),
            "--html",
            str(html),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "prices captured at: 2026-05" in printed and "1x H200:" in printed
    t = pd.read_csv(out)
    assert list(t.columns) == planner.COLUMNS and (t["job"] == planner.TOTAL).any()
    assert "Runtime and cost plan" in html.read_text() and "finetune/5B" in html.read_text()


def test_cli_writes_the_plan_into_the_configs_results_folder(tmp_path, capsys):
    root = tmp_path / "run"
    shutil.copytree(MINISTRAL_RUN, root)
    args = ["--config", "config/ministral3b.yaml", "--root", str(root), "--no-actuals"]
    assert planner.main(args) == 0
    out = root / "results/ministral3b/plan.csv"  # config key results: results/ministral3b
    assert f"wrote {out}" in capsys.readouterr().out
    assert list(pd.read_csv(out).columns) == planner.COLUMNS
