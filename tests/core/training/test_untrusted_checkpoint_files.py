"""Checkpoint files come from other hosts (a Vast instance's copies): nothing in them runs code
when loaded. The loop's checkpoint files (a study evaluation's tensors with them: the bridge's
best state) load with torch's weights_only unpickler; a sharded
checkpoint's ``.metadata`` (a plain pickle that torch's reader loads with ``pickle.load``) through
:class:`ablate.core.training.sharding.MetadataReader`. The payloads here would touch a file."""

from __future__ import annotations

import pathlib
import pickle
from types import SimpleNamespace

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException

from ablate.core.outputs import checkpoint_integrity
from ablate.core.training import saving, sharding
from ablate.core.training.loop import State
from ablate.core.training.params import resolve_params


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


class _Evaluation:
    """A study's evaluation as the loop's checkpoints carry it (the bridge's: curve, best state)."""

    def __init__(self, best: dict[str, torch.Tensor]):
        self.values, self.tensors = {"curve": [{"step": 2, "accuracy": 0.5}]}, best

    def state(self):
        return self.values, self.tensors

    def load(self, values, tensors):
        self.values, self.tensors = values, tensors

    def unfit(self, tensors):
        return None


def _trainer(ckpts: pathlib.Path, evaluation: _Evaluation):
    """What :func:`saving.save` and ``load`` read of a one-process run."""
    net, opt, sched = _parts()
    spec = SimpleNamespace(checkpoints=ckpts, recipe=SimpleNamespace(evaluation=evaluation))
    return SimpleNamespace(
        spec=spec, model=net, optimizer=opt, scheduler=sched, sharded=False, master=None,
        device=torch.device("cpu"), state=State(step=2), params=resolve_params({"save_total_limit": 1}, "finetune"),
        losses=[torch.tensor(1.5)],  # a step not logged yet: its loss is saved
    )  # fmt: skip


@pytest.mark.parametrize("name", [saving.EVALUATION, saving.OPTIMIZER, saving.SCHEDULER])
def test_a_payload_in_a_loop_checkpoint_file_never_runs(tmp_path, name):
    ckpts, ran = tmp_path / "checkpoints", tmp_path / "payload-ran"
    ckpt = saving.save(_trainer(ckpts, _Evaluation({"w": torch.ones(2)})))
    # the file replaced and the manifest written again, as by whoever altered the copy
    torch.save({"state": Payload(ran)}, ckpt / name)
    checkpoint_integrity.mark_complete(ckpt, 2, saving.FORMAT_WHOLE)
    with pytest.raises(saving.UnreadableCheckpoint) as refused:
        saving.load(_trainer(ckpts, _Evaluation({})), ckpt)
    assert not ran.exists()
    # one line naming the file as altered, never torch's advice to load it unrestricted
    message = str(refused.value)
    assert message == (
        f"{ckpt / name} holds objects no checkpoint holds (global: GLOBAL getattr): "
        "refused, nothing of it ran; the file was altered or is not this pipeline's"
    )


def test_a_study_evaluation_round_trips_under_weights_only(tmp_path):
    best = {"weight": torch.arange(6.0).reshape(2, 3)}
    ckpt = saving.save(_trainer(tmp_path / "checkpoints", _Evaluation(best)))
    torch.manual_seed(7)  # the checkpoint's RNG state must come back over this
    evaluation = _Evaluation({})
    trainer = _trainer(tmp_path / "checkpoints", evaluation)
    trainer.state = State()
    saving.load(trainer, ckpt)
    assert trainer.state.step == 2 and evaluation.values == {
        "curve": [{"step": 2, "accuracy": 0.5}]
    }
    assert torch.equal(evaluation.tensors["weight"], best["weight"])


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


def _dotted_global_payload(module: str, name: str, arg: str) -> bytes:
    """A protocol-4 pickle calling ``module``'s ``name`` with ``arg``: STACK_GLOBAL takes a dotted
    ``name`` and resolves it attribute by attribute through the module's namespace."""
    strings = b"".join(
        pickle.SHORT_BINUNICODE + bytes([len(s.encode())]) + s.encode() for s in (module, name)
    )
    call = pickle.SHORT_BINUNICODE + bytes([len(arg.encode())]) + arg.encode()
    return pickle.PROTO + b"\x04" + strings + pickle.STACK_GLOBAL + call + pickle.TUPLE1 + b"R."


@pytest.mark.parametrize(
    "module, name",
    [
        # the module the metadata classes live in imports os and torch
        ("torch.distributed.checkpoint.metadata", "os.mkdir"),
        ("torch.distributed.checkpoint.metadata", "torch.serialization.os.mkdir"),
        ("torch.distributed.checkpoint.metadata", "Metadata.__init__.__globals__"),
        ("torch", "serialization.os.mkdir"),
    ],
)
def test_a_dotted_name_in_sharded_metadata_never_resolves(tmp_path, module, name):
    ran = tmp_path / "payload-ran"
    payload = _dotted_global_payload(module, name, str(ran))
    if name.endswith("mkdir"):  # the payload works: plain pickle runs it
        pickle.loads(payload)
        assert ran.is_dir()
        ran.rmdir()
    _sharded_checkpoint(tmp_path)
    (tmp_path / sharding.SHARDS_DIR / ".metadata").write_bytes(payload)
    with pytest.raises(CheckpointException, match=rf"names {module}\.{name}, .*refused"):
        sharding.load_model(torch.nn.Linear(3, 2), tmp_path)
    assert not ran.exists()


def test_a_dotted_name_in_a_loop_checkpoint_file_never_resolves(tmp_path):
    """The loop's files load through torch's weights_only unpickler, whose allow-list is of full
    names: the same protocol-4 payload as a torch file's pickle is refused, never run."""
    import zipfile

    ran, path = tmp_path / "payload-ran", tmp_path / "scheduler.pt"
    torch.save({"last_epoch": 1}, path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    payload = _dotted_global_payload("torch.distributed.checkpoint.metadata", "os.mkdir", str(ran))
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, payload if n.endswith("data.pkl") else data)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not ran.exists()
