"""ablate.core.training.saving: a checkpoint's files and rotation, the RNG seed of a process a
checkpoint lacks, the segments a run trained in, the unlogged losses a resume carries, the end of
a run. A full disk during a checkpoint save is named as such in one line (the disk's path and free
space, the fix), not as torch's zip writer's "unexpected pos". The disk there is ``/dev/full``,
whose every write fails with ENOSPC, in place of one of the checkpoint's files. That no payload
in a checkpoint file runs: tests/core/training/test_untrusted_checkpoint_files.py."""

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
from ablate.core.training.recipe import Recipe


def _trainer(ckpts: Path) -> SimpleNamespace:
    """What :func:`saving.save` reads of a one-process run."""
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    p = resolve_params({"save_total_limit": 1}, "finetune")
    return SimpleNamespace(
        spec=SimpleNamespace(checkpoints=ckpts, recipe=Recipe(p)), model=net, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), sharded=False,
        state=State(step=2), params=p, losses=[],
    )  # fmt: skip


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
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


def test_a_save_keeps_the_newest_complete_checkpoints_only(tmp_path):
    """``save_total_limit: 1``: the save at step 4 removes step 2's complete checkpoint and
    step 3's incomplete one (older than the newest kept); step 5's incomplete one stays."""
    ckpts = tmp_path / "checkpoints"
    trainer = _trainer(ckpts)
    first = saving.save(trainer)
    files = {saving.WEIGHTS, saving.OPTIMIZER, saving.SCHEDULER, saving.LOOP_STATE}
    assert files <= {f.name for f in first.iterdir()}
    (ckpts / "checkpoint-3").mkdir()
    (ckpts / "checkpoint-5").mkdir()
    trainer.state.step = 4
    saving.save(trainer)
    assert sorted(d.name for d in ckpts.iterdir()) == ["checkpoint-4", "checkpoint-5"]
    assert checkpoint_integrity.complete_checkpoints(ckpts) == [ckpts / "checkpoint-4"]


def test_a_process_without_its_rng_state_gets_a_seed_of_its_own():
    seed = saving.rank_seed(7, 100, 1)
    assert seed == saving.rank_seed(7, 100, 1)  # the same resume draws the same
    others = {saving.rank_seed(*k) for k in [(7, 100, 0), (7, 100, 2), (7, 101, 1), (8, 100, 1)]}
    assert seed not in others and len(others) == 4
    assert all(0 <= saving.rank_seed(7, 100, r) < 2**63 for r in range(64))  # manual_seed takes it


def test_segments_name_the_steps_each_trained():
    """A resume at the step where the last segment began (no step trained in between) leaves
    that segment out; the last one runs to the state's step."""
    state = State(step=9)
    for start, world in [(0, 1), (4, 2), (4, 4), (6, 1)]:
        state.segments.append({"from_step": start, "world_size": world})
    assert saving.segments(state) == [
        {"steps": [1, 4], "world_size": 1},
        {"steps": [5, 6], "world_size": 4},
        {"steps": [7, 9], "world_size": 1},
    ]
    assert saving.segments(State(step=6, segments=[{"from_step": 6, "world_size": 1}])) == []


def test_begin_segment_seeds_every_process_of_a_fresh_start(monkeypatch, tmp_path):
    trainer = SimpleNamespace(state=State(step=3))
    monkeypatch.setattr(saving.provenance, "hardware", lambda: {"cpu": "test"})
    saving.begin_segment(trainer, None)
    saving.begin_segment(trainer, tmp_path)  # a checkpoint without this process's RNG state
    assert (
        trainer.state.segments
        == [
            {
                "from_step": 3,
                "world_size": 1,
                "rng": {"restored": [], "seeded": [0]},
                "hardware": {"cpu": "test"},
            }
        ]
        * 2
    )
    (tmp_path / "rng_state.pth").touch()
    saving.begin_segment(trainer, tmp_path)
    assert trainer.state.segments[-1]["rng"] == {"restored": [0], "seeded": []}


def test_the_unlogged_losses_round_trip_on_one_process():
    trainer = SimpleNamespace(losses=[], device=torch.device("cpu"))
    assert saving.unlogged_losses(trainer) == []
    trainer.losses = [torch.tensor(1.5), torch.tensor(2.25)]
    saved = saving.unlogged_losses(trainer)
    assert saved == [1.5, 2.25]
    saving.restore_unlogged_losses(trainer, saved)
    assert [x.item() for x in trainer.losses] == saved


@pytest.mark.parametrize("keep", [False, True])
def test_the_end_of_a_run_removes_its_checkpoints_unless_kept(tmp_path, keep):
    (tmp_path / "checkpoint-2").mkdir(parents=True)
    quiet = SimpleNamespace(requested=lambda: False)
    assert saving.end_of_run(quiet, tmp_path, keep=keep, save_last=lambda: 1 / 0) is False
    assert tmp_path.exists() == keep


def test_a_signal_after_the_training_keeps_the_checkpoints_saving_the_last(tmp_path, capsys):
    saved = []
    signalled = SimpleNamespace(requested=lambda: True, signal=None)
    assert saving.end_of_run(signalled, tmp_path, keep=False, save_last=lambda: saved.append(1))
    assert saved == [1] and tmp_path.exists()
    assert f"{tmp_path} kept, from which a rerun writes them again" in capsys.readouterr().out


def _complete(ckpts: Path, step: int, content: str = "") -> Path:
    """A complete ``checkpoint-<step>`` in ``ckpts`` of one file holding ``content``."""
    ckpt = ckpts / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "weights").write_text(content or str(step))
    checkpoint_integrity.mark_complete(ckpt, step, saving.FORMAT_WHOLE)
    return ckpt


def test_a_checkpoint_kept_for_the_outputs_goes_once_a_rerun_wrote_them_also_when_kept(tmp_path):
    """``keep_checkpoints: true``: the checkpoint a signal after the training saved, only so a
    rerun writes the outputs again, stayed beside ``final/`` after the rerun wrote them, where a
    run never signalled leaves the checkpoints its training saved alone. One its training saved
    again under that name since is its own: kept."""
    ckpts = tmp_path / "checkpoints"
    _complete(ckpts, 1)  # the training's own
    signalled = SimpleNamespace(requested=lambda: True, signal=None)
    quiet = SimpleNamespace(requested=lambda: False)
    assert saving.end_of_run(signalled, ckpts, keep=True, save_last=lambda: _complete(ckpts, 2))
    assert checkpoint_integrity.newest_complete(ckpts) == ckpts / "checkpoint-2"
    assert saving.end_of_run(quiet, ckpts, keep=True) is False  # the rerun's end
    assert sorted(os.listdir(ckpts)) == ["checkpoint-1"]
    assert saving.end_of_run(signalled, ckpts, keep=True, save_last=lambda: _complete(ckpts, 2))
    checkpoint_integrity.set_aside(ckpts / "checkpoint-2")  # the rerun's training saves it again
    _complete(ckpts, 2, "trained again")
    assert saving.end_of_run(quiet, ckpts, keep=True) is False
    assert sorted(p.name for p in ckpts.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
