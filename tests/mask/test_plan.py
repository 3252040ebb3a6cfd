"""The mask study's side of the planner (ablate.mask.plan): the note on finetune GPUs that buy
little, from the measured scaling. (The plans themselves, through the planner:
tests/core/planner/test_planner.py, tests/mask/test_models.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.core import planner

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("gpus", "said"), [(1, False), (2, False), (4, True)])
def test_finetune_gpus_that_buy_little_are_named_at_the_dry_run(gpus, said):
    """mask.resources.finetune.gpu above what pays (measured below half of linear: 4 GPUs give
    the packed step 1.25x) is named in one line with the key and the alternative; 2 GPUs (1.06x,
    0.53 of linear) and 1 pass silently."""
    from ablate.mask.plan import data_parallel_note

    config = planner.load_config(REPO / "config" / "ministral3b.yaml")
    config["mask"]["resources"]["finetune"]["gpu"] = gpus
    note = data_parallel_note(config)
    assert (note is not None) == said
    if said:
        assert note.startswith(
            "note: mask.resources.finetune.gpu: 4 buys little: 3A, 3B, 5B: 1.25x"
        )
        assert "--resources gpu=N" in note and "\n" not in note
