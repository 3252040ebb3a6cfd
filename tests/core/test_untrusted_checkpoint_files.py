"""Checkpoint files come from other hosts (a Vast instance's copies): nothing in them runs code
when loaded. The bridge's resume files load with torch's weights_only unpickler; a sharded
checkpoint's ``.metadata`` (a plain pickle that torch's reader loads with ``pickle.load``) through
:class:`ablate.core.training.sharding.MetadataReader`. The payloads here would touch a file."""

from __future__ import annotations

import pathlib
import pickle

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException

from ablate.bridge import resume
from ablate.core import checkpoint
from ablate.core.training import sharding


class Payload:
    """Unpickled, it calls ``Path.touch`` on ``target``."""

    def __init__(self, target: pathlib.Path):
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (self.target,))


def _parts():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / 10)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    return net, opt, sched


@pytest.mark.parametrize("name", [resume.STATE_FILE, resume.RNG_FILE.format(rank=0)])
def test_a_payload_in_a_bridge_resume_file_never_runs(tmp_path, name):
    ckpts, ran = tmp_path / "checkpoints", tmp_path / "payload-ran"
    net, opt, sched = _parts()
    with resume.checkpointing(ckpts, {"run": "r"}, {}):
        assert resume.restore(net, opt, sched) is None  # the loop's first look: nothing yet
        resume.save(2, net, opt, sched, {"step": 2, "losses": [0.5], "best": {"step": 2}})
        ckpt = ckpts / "checkpoint-2"
        # the file replaced and the manifest written again, as by whoever altered the copy
        torch.save({"translator": Payload(ran)}, ckpt / name)
        checkpoint.mark_complete(ckpt, 2, "torch")
        with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
            resume.restore(*_parts())
    assert not ran.exists()


def test_bridge_resume_files_round_trip_under_weights_only(tmp_path):
    ckpts = tmp_path / "checkpoints"
    net, opt, sched = _parts()
    loop = {"step": 2, "losses": [{"step": 1, "loss": 0.5}], "best": {"state": net.state_dict()}}
    with resume.checkpointing(ckpts, {"run": "r"}, {}):
        assert resume.restore(net, opt, sched) is None
        resume.save(2, net, opt, sched, loop)
        torch.manual_seed(7)  # the checkpoint's RNG state must come back over this
        other = _parts()
        got_loop, where = resume.restore(*other)
        assert where.name == "checkpoint-2" and got_loop["step"] == 2
        assert torch.equal(other[0].weight, net.weight)
        assert other[2].last_epoch == sched.last_epoch


def _sharded_checkpoint(directory: pathlib.Path) -> torch.nn.Module:
    """A torch.distributed.checkpoint of a small model, as :func:`sharding.save_checkpoint`
    lays it out (one process: dcp runs without a process group)."""
    net = torch.nn.Linear(3, 2)
    with pytest.warns(UserWarning):  # torch: no process group, so a single process
        dcp.save({"model": net.state_dict()}, checkpoint_id=directory / sharding.SHARDS_DIR)
    return net


def _payload_metadata(directory: pathlib.Path, ran: pathlib.Path) -> None:
    with (directory / sharding.SHARDS_DIR / ".metadata").open("wb") as f:
        pickle.dump(Payload(ran), f)


def test_torch_reader_runs_a_metadata_payload(tmp_path):
    """The upstream behaviour :class:`sharding.MetadataReader` works around: torch's own reader
    unpickles ``.metadata`` with ``pickle.load``, so the payload runs."""
    ran = tmp_path / "payload-ran"
    _sharded_checkpoint(tmp_path)
    _payload_metadata(tmp_path, ran)
    with pytest.raises(Exception):  # noqa: B017  (whatever fails after the payload ran)
        dcp.FileSystemReader(tmp_path / sharding.SHARDS_DIR).read_metadata()
    assert ran.exists()


def test_a_payload_in_sharded_metadata_never_runs(tmp_path):
    ran = tmp_path / "payload-ran"
    net = _sharded_checkpoint(tmp_path)
    into = torch.nn.Linear(3, 2)
    with pytest.warns(UserWarning):
        sharding.load_model(into, tmp_path)  # a real checkpoint's metadata loads
    assert torch.equal(into.weight, net.weight)
    _payload_metadata(tmp_path, ran)
    # torch reports the reader's refusal inside its own exception
    with pytest.raises(CheckpointException, match=r"names pathlib\.Path\.touch.*refused"):
        sharding.load_model(torch.nn.Linear(3, 2), tmp_path)
    assert not ran.exists()
