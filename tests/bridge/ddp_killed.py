"""A bridge training killed in a given step, for the data-parallel resume test: run by torchrun
(``"call": "ddp_killed:train_entry_killed_in"``, this folder on PYTHONPATH) in every process."""

from __future__ import annotations

from ablate.bridge.pair import Pair
from ablate.bridge.training import entries


def train_entry_killed_in(kill_in: int, **kwargs):
    loss_once = Pair.loss

    def killed(pair, model, items, step, *a, **kw):
        if step == kill_in:
            raise SystemExit(f"killed in step {step}")  # as a lost instance: nothing saved
        return loss_once(pair, model, items, step, *a, **kw)

    Pair.loss = killed
    return entries.train_entry(**kwargs)
