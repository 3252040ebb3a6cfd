"""A full disk during a checkpoint save is named as such in one line (the disk's path and free
space, the fix), not as torch's zip writer's "unexpected pos". The disk here is ``/dev/full``,
whose every write fails with ENOSPC, in place of one of the checkpoint's files."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ablate.core.outputs import checkpoint_integrity
from ablate.core.training import saving
from ablate.core.training.loop import State
from ablate.core.training.params import resolve_params

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def _trainer(ckpts: Path) -> SimpleNamespace:
    """What :func:`saving.save` reads of a one-process run."""
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    return SimpleNamespace(
        spec=SimpleNamespace(checkpoints=ckpts, evaluation=None), model=net, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), sharded=False,
        state=State(step=2), params=resolve_params({"save_total_limit": 1}, "finetune"), losses=[],
    )  # fmt: skip


@pytest.mark.parametrize("name", [saving.OPTIMIZER, saving.SCHEDULER])
def test_a_full_disk_during_a_checkpoint_save_is_named(tmp_path, name):
    ckpt = tmp_path / "checkpoints" / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / name).symlink_to("/dev/full")
    with pytest.raises(checkpoint_integrity.CheckpointError) as failed:
        saving.save(_trainer(tmp_path / "checkpoints"))
    message = str(failed.value)
    assert message.startswith(
        f"saving checkpoint-2 failed: no space left on the disk holding {ckpt} ("
    )
    assert "GB free of" in message and message.endswith(
        "free space there or move the results to a larger disk, then rerun"
    )
    assert "\n" not in message and "unexpected pos" not in message
    assert not (ckpt / checkpoint_integrity.CHECKPOINT_MARKER).exists()  # never resumed from
