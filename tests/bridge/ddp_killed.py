"""A bridge training killed in a given step, for the data-parallel resume test: run by torchrun
(``"call": "ddp_killed:train_entry_killed_in"``, this folder on PYTHONPATH) in every process."""

from __future__ import annotations

from ablate.bridge import train


def train_entry_killed_in(kill_in: int, **kwargs):
    step_once = train.train_step

    def killed(pair, model, opt, sched, items, step, *a, **kw):
        if step == kill_in:
            raise SystemExit(f"killed in step {step}")  # as a lost instance: nothing saved
        return step_once(pair, model, opt, sched, items, step, *a, **kw)

    train.train_step = killed
    return train.train_entry(**kwargs)
