"""One rule for a training checkpoint that cannot be read into this run: whatever its load raises
(a file that does not parse, a well-formed pickle of admitted globals with bad arguments, a
loop state of another shape, weights of another shape or with a tensor missing), the checkpoint
is set aside with the file and the exception named in one line, and the one before it is
resumed from; with none left the run starts fresh, the trainer untouched. The files here were
altered and their manifest written again (as by the host that wrote a copy); that no payload in
them runs: tests/core/training/test_untrusted_checkpoint_files.py. The loaders are also fuzzed
with arbitrary well-formed pickles of the globals they admit: a refusal, never another
exception."""

from __future__ import annotations

import json
import random
import shutil
import struct
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch

from ablate.core.outputs import checkpoint_integrity
from ablate.core.training import saving, sharding
from ablate.core.training.loop import State
from ablate.core.training.params import resolve_params
from ablate.core.training.recipe import Recipe

RUN_KEY = {"config": "unloadable"}
PARAMS = resolve_params({"save_total_limit": 2, "seed": 1}, "finetune")


class _Tied(torch.nn.Module):
    """Two layers of one weight (a tied embedding table and head): stored once in a checkpoint."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(3, 3, bias=False)
        self.head = torch.nn.Linear(3, 3, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _trainer(
    ckpts: Path, seed: int, sharded: bool = False, model=lambda: torch.nn.Linear(3, 2)
) -> SimpleNamespace:
    """What :func:`saving.save` and :func:`saving.load` read of a one-process run of
    ``model()``."""
    torch.manual_seed(seed)
    net = model()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    return SimpleNamespace(
        spec=SimpleNamespace(checkpoints=ckpts, recipe=Recipe(PARAMS)), model=net, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), sharded=sharded,
        master=None, device=torch.device("cpu"), state=State(),
        params=PARAMS, losses=[],
    )  # fmt: skip


def _resume(ckpts: Path, trainer) -> Path | None:
    found, _ = saving.resume_from(ckpts, RUN_KEY, None, lambda ckpt: saving.load(trainer, ckpt))
    return found


def _two_checkpoints(ckpts: Path, model=lambda: torch.nn.Linear(3, 2)) -> None:
    """checkpoint-1 and checkpoint-2 of one run, an optimizer step apart."""
    trainer = _trainer(ckpts, seed=0, model=model)
    assert _resume(ckpts, trainer) is None  # the run's first start: its key written
    for step in (1, 2):
        trainer.model(torch.ones(1, 3)).sum().backward()
        trainer.optimizer.step()
        trainer.state.step = step
        saving.save(trainer)


def _weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _torch_file_holding(path: Path, pickled: bytes) -> None:
    """A torch file whose pickle (``data.pkl``) is ``pickled``: torch's zip layout kept."""
    torch.save({}, path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, pickled if n.endswith("data.pkl") else data)


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _optimizer_of_an_int_ordereddict(ckpt: Path) -> str:
    _torch_file_holding(
        ckpt / saving.OPTIMIZER,
        b"\x80\x02" + _global("collections", "OrderedDict") + b"K\x05\x85R.",
    )
    return f"{ckpt / saving.OPTIMIZER} does not load (TypeError: 'int' object is not iterable)"


def _scheduler_of_a_missing_memo(ckpt: Path) -> str:
    _torch_file_holding(ckpt / saving.SCHEDULER, b"\x80\x02h\x05.")  # BINGET 5: nothing put
    return f"{ckpt / saving.SCHEDULER} does not load (KeyError: 5)"


def _loop_state_with_another_key(ckpt: Path) -> str:
    path = ckpt / saving.LOOP_STATE
    path.write_text(json.dumps({**json.loads(path.read_text()), "unknown": 1}))
    return f"{path} is unreadable (TypeError: "


def _weights_of_another_shape(ckpt: Path) -> str:
    safetensors.torch.save_model(torch.nn.Linear(3, 5), str(ckpt / saving.WEIGHTS))
    return f"{ckpt / saving.WEIGHTS} does not fit this run's model (weight: [5, 3] in the file, [2, 3] in the model)"


def _weights_with_a_tensor_missing(ckpt: Path) -> str:
    """The model's ``bias`` left out: refused before the load (it loaded the weight, then raised
    a RuntimeError naming no file: set aside only as partly loaded, the run stopped)."""
    weights = safetensors.torch.load_file(ckpt / saving.WEIGHTS)
    safetensors.torch.save_file({"weight": weights["weight"]}, str(ckpt / saving.WEIGHTS))
    return f"{ckpt / saving.WEIGHTS} does not fit this run's model (bias: not in the file)"


KINDS = [
    _optimizer_of_an_int_ordereddict,
    _scheduler_of_a_missing_memo,
    _loop_state_with_another_key,
    _weights_of_another_shape,
    _weights_with_a_tensor_missing,
]


@pytest.mark.parametrize("alter", KINDS, ids=[k.__name__.strip("_") for k in KINDS])
def test_a_checkpoint_that_does_not_load_is_set_aside_and_the_one_before_resumed(
    tmp_path, capfd, alter
):
    ckpts = tmp_path / "checkpoints"
    _two_checkpoints(ckpts)
    named = alter(ckpts / "checkpoint-2")
    checkpoint_integrity.mark_complete(ckpts / "checkpoint-2", 2, saving.FORMAT_WHOLE)
    capfd.readouterr()
    trainer = _trainer(ckpts, seed=1)
    assert _resume(ckpts, trainer) == ckpts / "checkpoint-1"
    lines = [x for x in capfd.readouterr().err.splitlines() if "set aside" in x]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"[resume] checkpoint-2 set aside as corrupt-checkpoint-2: {named}"
    ), lines
    assert (ckpts / "corrupt-checkpoint-2").is_dir()
    assert trainer.state.step == 1
    saved = safetensors.torch.load_file(ckpts / "checkpoint-1" / saving.WEIGHTS)
    assert all(torch.equal(trainer.model.state_dict()[k], saved[k]) for k in saved)


@pytest.mark.parametrize("alter", KINDS, ids=[k.__name__.strip("_") for k in KINDS])
def test_with_no_checkpoint_left_the_run_starts_fresh_untouched(tmp_path, capfd, alter):
    ckpts = tmp_path / "checkpoints"
    _two_checkpoints(ckpts)
    shutil.rmtree(ckpts / "checkpoint-1")
    alter(ckpts / "checkpoint-2")
    checkpoint_integrity.mark_complete(ckpts / "checkpoint-2", 2, saving.FORMAT_WHOLE)
    trainer = _trainer(ckpts, seed=1)
    fresh, optimizer = _weights(trainer), trainer.optimizer.state_dict()
    assert _resume(ckpts, trainer) is None
    assert "[resume] checkpoint-2 set aside as corrupt-checkpoint-2: " in capfd.readouterr().err
    got = trainer.model.state_dict()
    assert all(torch.equal(got[k], fresh[k]) for k in fresh)  # nothing of it went in
    assert trainer.optimizer.state_dict() == optimizer and trainer.state == State()


def test_a_checkpoint_that_fails_once_in_the_trainer_stops_the_run_unless_an_older_one_loads(
    tmp_path, capfd
):
    """An optimizer state of no parameter group reads as a mapping and fails only in
    ``load_state_dict``, after the weights went in: set aside as any other; the one before it
    loads over what went in; with none left the trainer is not fresh, so the job stops in one
    line instead of training on from another run's weights, and its rerun starts fresh."""
    ckpts = tmp_path / "checkpoints"
    _two_checkpoints(ckpts)

    def no_parameter_group(step: int) -> None:
        torch.save({"state": {}}, ckpts / f"checkpoint-{step}" / saving.OPTIMIZER)
        checkpoint_integrity.mark_complete(ckpts / f"checkpoint-{step}", step, saving.FORMAT_WHOLE)

    no_parameter_group(2)
    capfd.readouterr()
    trainer = _trainer(ckpts, seed=1)
    assert _resume(ckpts, trainer) == ckpts / "checkpoint-1" and trainer.state.step == 1
    saved = safetensors.torch.load_file(ckpts / "checkpoint-1" / saving.WEIGHTS)
    assert all(torch.equal(trainer.model.state_dict()[k], saved[k]) for k in saved)
    err = capfd.readouterr().err
    assert (
        f"[resume] checkpoint-2 set aside as corrupt-checkpoint-2: {ckpts / 'checkpoint-2'} does "
        "not load into this run (KeyError: 'param_groups')" in err
    ), err
    no_parameter_group(1)
    with pytest.raises(saving.PartlyLoaded) as stopped:
        _resume(ckpts, _trainer(ckpts, seed=1))
    assert str(stopped.value) == (
        f"{ckpts}: a checkpoint set aside above had gone into this run in part and no older one "
        "loads over it; rerun the job, which starts fresh"
    )
    assert checkpoint_integrity.complete_checkpoints(ckpts) == []  # the rerun starts fresh


def test_a_weights_file_holding_a_tied_tensor_under_both_names_is_set_aside(tmp_path, capfd):
    """A checkpoint's weights holding both names of a tied pair (``lm_head.weight`` and
    ``model.embed_tokens.weight``; a save stores it once) passed the check before the load;
    safetensors' ``load_model`` then loaded both and raised (``Unexpected key(s)`` on a second
    line: a set-aside line naming no tensor, the trainer touched, the run stopped). Refused
    before the load, both names said; the run starts fresh, untouched."""
    ckpts = tmp_path / "checkpoints"
    _two_checkpoints(ckpts, model=_Tied)
    shutil.rmtree(ckpts / "checkpoint-1")
    path = ckpts / "checkpoint-2" / saving.WEIGHTS
    (held,) = safetensors.torch.load_file(path).values()
    safetensors.torch.save_file({"embed.weight": held, "head.weight": held + 1}, str(path))
    checkpoint_integrity.mark_complete(ckpts / "checkpoint-2", 2, saving.FORMAT_WHOLE)
    capfd.readouterr()
    trainer = _trainer(ckpts, seed=1, model=_Tied)
    fresh = _weights(trainer)
    assert _resume(ckpts, trainer) is None
    assert capfd.readouterr().err.splitlines() == [
        f"[resume] checkpoint-2 set aside as corrupt-checkpoint-2: {path} does not fit this "
        "run's model (embed.weight and head.weight: one tied tensor, in the file twice)"
    ]
    got = trainer.model.state_dict()
    assert all(torch.equal(got[k], fresh[k]) for k in fresh) and trainer.state == State()


#: a sharded checkpoint's ``.metadata``: well-formed pickles of the globals it admits
METADATA = {
    "Metadata()": _global("torch.distributed.checkpoint.metadata", "Metadata") + b")R",
    "torch.Size(5)": _global("torch", "Size") + b"K\x05\x85R",
    "_get_layout('bogus')": _global("torch.serialization", "_get_layout") + b"X\x05\x00\x00\x00bogus\x85R",
}  # fmt: skip


@pytest.mark.parametrize("pickled", list(METADATA.values()), ids=list(METADATA))
def test_sharded_metadata_of_bad_arguments_sets_the_checkpoint_aside(tmp_path, capfd, pickled):
    ckpts = tmp_path / "checkpoints"
    trainer = _trainer(ckpts, seed=0, sharded=True)
    assert _resume(ckpts, trainer) is None
    ckpt = ckpts / "checkpoint-2"
    (ckpt / sharding.SHARDS_DIR).mkdir(parents=True)
    (ckpt / sharding.SHARDS_DIR / ".metadata").write_bytes(b"\x80\x02" + pickled + b".")
    checkpoint_integrity.mark_complete(ckpt, 2, checkpoint_integrity.FORMAT_SHARDED)
    capfd.readouterr()
    assert _resume(ckpts, trainer) is None
    err = capfd.readouterr().err
    assert (
        f"[resume] checkpoint-2 set aside as corrupt-checkpoint-2: "
        f"{ckpt / sharding.SHARDS_DIR / '.metadata'} does not load (" in err
    ), err
    assert (ckpts / "corrupt-checkpoint-2").is_dir()


#: a loop state's field of another type or out of the run's range, and the error it is refused by
#: (each went into the trainer: an AttributeError or TypeError after the load, every rerun)
LOOP_STATES = [
    ({"segments": 5}, "TypeError: segments is of type int, not list"),
    ({"tokens_seen": "lots"}, "TypeError: tokens_seen is of type str, not int"),
    ({"step": True}, "TypeError: step is of type bool, not int"),
    ({"step": -3}, "ValueError: step -3, not this checkpoint's (checkpoint-2) of 0..1200"),
    ({"step": 10**9}, "ValueError: step 1000000000, not this checkpoint's (checkpoint-2) of 0..1200"),
    ({"step": 1}, "ValueError: step 1, not this checkpoint's (checkpoint-2) of 0..1200"),
    ({"tokens_seen": -1}, "ValueError: tokens_seen -1 is negative"),
    ({"segments": [{"from_step": 7}]}, "ValueError: a segment from step 7, not in 0..2"),
    ({"segments": ["x"]}, "TypeError: a segment without an integer from_step: x"),
    ({"log_history": [{"step": True}]}, "TypeError: a log_history entry without an integer step"),
    ({"log_history": [{"step": 9}]}, "ValueError: a log_history entry of step 9, not in 0..2"),
    ({"unlogged_losses": [True]}, "TypeError: unlogged_losses is not a list of numbers"),
    ({"log_history": [{"step": 2, "stop": {"step": 2}}]},
     "TypeError: a log_history stop that is not one of its step"),
    ({"log_history": [{"step": 2, "stop": {"reason": "x", "step": 1, "detail": {}}}]},
     "TypeError: a log_history stop that is not one of its step"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "error"), LOOP_STATES, ids=[json.dumps(f) for f, _ in LOOP_STATES]
)
def test_a_loop_state_of_another_type_or_range_sets_its_checkpoint_aside(
    tmp_path, capfd, fields, error
):
    """Every field of ``loop_state.json`` is checked against the run (its type, the step the
    checkpoint's own within 0..max_steps, the counts, the segments' and logs' steps) before
    anything goes into the trainer: the checkpoint is set aside, the one before it resumed."""
    ckpts = tmp_path / "checkpoints"
    _two_checkpoints(ckpts)
    path = ckpts / "checkpoint-2" / saving.LOOP_STATE
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))
    checkpoint_integrity.mark_complete(ckpts / "checkpoint-2", 2, saving.FORMAT_WHOLE)
    capfd.readouterr()
    trainer = _trainer(ckpts, seed=1)
    assert _resume(ckpts, trainer) == ckpts / "checkpoint-1"
    assert (
        f"[resume] checkpoint-2 set aside as corrupt-checkpoint-2: {path} is unreadable ({error}"
        in capfd.readouterr().err
    )
    assert trainer.state == State(**json.loads((ckpts / "checkpoint-1" / path.name).read_text()))


# ---------------------------------------------------------------------------- the loaders fuzzed

#: globals torch's weights_only unpickler admits (the loop's files), by (module, name)
TORCH_GLOBALS = [
    ("collections", "OrderedDict"),
    ("collections", "Counter"),
    ("builtins", "set"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch", "float32"),
    ("torch", "FloatStorage"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
]
FUZZED = [saving.OPTIMIZER, saving.SCHEDULER, "rng_state.pth"]
STRINGS = ["", "bogus", "cpu", "0", "step", "state", "param_groups", "params", "lr", "storage"]


def _pickled(rng: random.Random, names: list[tuple[str, str]], depth: int = 0) -> bytes:
    """One random expression: an opcode sequence that leaves exactly one object on the stack
    (a scalar, a container, a call of an admitted global, a BUILD, a memo GET maybe of nothing
    PUT), at most 4 deep; each is PUT into the memo at random."""
    leaves = ["int", "str", "none", "float", "get"]
    kind = rng.choice(
        leaves + (["tuple", "list", "dict", "call", "new", "build"] if depth < 4 else [])
    )
    inner = lambda: _pickled(rng, names, depth + 1)  # noqa: E731
    some = lambda n: b"".join(inner() for _ in range(rng.randint(0, n)))  # noqa: E731
    if kind == "int":
        out = b"J" + struct.pack("<i", rng.randint(-3, 9))
    elif kind == "str":
        s = rng.choice(STRINGS).encode()
        out = b"X" + struct.pack("<I", len(s)) + s
    elif kind == "none":
        out = b"N"
    elif kind == "float":
        out = b"G" + struct.pack(">d", rng.choice([0.0, -1.5, 1e300, float("nan")]))
    elif kind == "get":
        out = b"h" + bytes([rng.randint(0, 3)])
    elif kind == "tuple":
        out = b"(" + some(3) + b"t"
    elif kind == "list":
        out = b"](" + some(3) + b"e"
    elif kind == "dict":
        out = b"}(" + b"".join(inner() + inner() for _ in range(rng.randint(0, 2))) + b"u"
    elif kind in ("call", "new"):
        args = b"(" + some(3) + b"t"
        out = _global(*rng.choice(names)) + args + (b"R" if kind == "call" else b"\x81")
    else:  # build: an object, then its state
        out = _global(*rng.choice(names)) + b"(" + some(2) + b"tR" + inner() + b"b"
    return out + (b"q" + bytes([rng.randint(0, 3)]) if rng.random() < 0.3 else b"")


def _load_refused_or_loaded(trainer, ckpt: Path) -> bool:
    """``saving.load``: it loads, or refuses with :class:`saving.UnreadableCheckpoint`; a refusal
    in its reading changes nothing of the trainer. Returns whether the trainer stayed fresh."""
    before = _weights(trainer)
    try:
        saving.load(trainer, ckpt)
    except saving.PartlyLoaded:
        return False
    except saving.UnreadableCheckpoint:
        got = trainer.model.state_dict()
        assert all(torch.equal(got[k], before[k]) for k in before)
        return True
    return False


def test_the_loaders_refuse_arbitrary_pickles_of_admitted_globals(tmp_path):
    ckpts = tmp_path / "checkpoints"
    _two_checkpoints(ckpts)
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    shutil.copytree(ckpts / "checkpoint-2", whole)
    shutil.copytree(ckpts / "checkpoint-2", sharded)
    (sharded / sharding.SHARDS_DIR).mkdir()
    good = {name: (whole / name).read_bytes() for name in FUZZED}
    rng = random.Random(0)
    names = sorted(sharding.METADATA_GLOBALS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.distributed.checkpoint: no process group
        trainers = [_trainer(ckpts, seed=1), _trainer(ckpts, seed=1, sharded=True)]
        for _ in range(150):
            name = rng.choice(FUZZED)
            _torch_file_holding(whole / name, b"\x80\x02" + _pickled(rng, TORCH_GLOBALS) + b".")
            if not _load_refused_or_loaded(trainers[0], whole):
                trainers[0] = _trainer(ckpts, seed=1)
            (whole / name).write_bytes(good[name])
            metadata = b"\x80\x02" + _pickled(rng, names) + b"."
            (sharded / sharding.SHARDS_DIR / ".metadata").write_bytes(metadata)
            if not _load_refused_or_loaded(trainers[1], sharded):
                trainers[1] = _trainer(ckpts, seed=1, sharded=True)
