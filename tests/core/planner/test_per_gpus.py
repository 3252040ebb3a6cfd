"""A data-parallel job's estimate on 1, 2, 4 and 8 GPUs (ablate.core.planner.per_gpus)."""

from __future__ import annotations

from helpers import planner_config

from ablate.core import planner


def test_the_plan_says_what_each_gpu_count_buys_a_finetune(tmp_path):
    """`ablate plan`'s summary: each data-parallel finetune on 1, 2, 4 and 8 GPUs, the time and
    speed-up from its own estimate, 8 marked extrapolated (measured on at most 4)."""
    config = planner_config("ministral3b.yaml", setups=[{"gpu": "H100 SXM"}])
    p = planner.make_plan(config, root=tmp_path, actuals=False)
    lines = planner.summary_lines(p)
    at = lines.index(
        "each data-parallel job on 1, 2, 4, 8 GPUs (its resources gpu; time, speed-up):"
    )
    per_job = lines[at + 1 : at + 4]
    assert [x.split(" on ")[0].strip() for x in per_job] == [
        "finetune/3A",
        "finetune/3B",
        "finetune/5B",
    ]
    for x in per_job:
        assert "1: " in x and "(1.00x)" in x and "2: " in x and "(1.06x)" in x
        assert "(1.25x)" in x and "x, extrapolated)" in x.split("8: ")[1]
