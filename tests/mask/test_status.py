"""The mask study's STATUS lines (ablate.mask.status): a changed key named where the config
sets it."""

from __future__ import annotations

from helpers import seeded

from ablate.mask import layout


def test_stale_seed_names_its_declared_variant():
    """A seed's changed key is set on its declared variant (mask.finetune.variants.3B), not on a
    variant named 3B-s1, which no config has (before: mask.finetune.defaults)."""
    from ablate.mask import status

    cfg = seeded(**{"3B": [0, 1]})
    cfg["mask"]["finetune"]["variants"]["3B"]["warmup_ratio"] = 0.1
    before = {j.name: j.config for j in layout.jobs(cfg)}
    cfg["mask"]["finetune"]["variants"]["3B"]["warmup_ratio"] = 0.2
    now = {j.name: j for j in layout.jobs(cfg)}
    changes = {
        v: status.changes(now[f"finetune/{v}"], before[f"finetune/{v}"], cfg)
        for v in ("3B-s1", "5B-s1")
    }
    assert changes == {
        "3B-s1": ["mask.finetune.variants.3B.warmup_ratio 0.1 -> 0.2"],
        # the stage-5 variant inherits it: named on itself, then where it is set
        "5B-s1": [
            "mask.finetune.variants.5B.warmup_ratio 0.1 -> 0.2 "
            "(now set by mask.finetune.variants.3B.warmup_ratio)"
        ],
    }
