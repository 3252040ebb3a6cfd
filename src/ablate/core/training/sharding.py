"""Sharded data parallelism (torch FSDP2) of a causal LM: the recipe of a run in N > 1 processes.

fp32 parameters sharded over the processes (they are the master weights), all-gathered in the
compute dtype for the forward and backward, gradients reduce-scattered in fp32; no autocast
(docs/training.md, "sharded_weights"). A checkpoint's index ``.metadata`` loads through
:class:`MetadataReader`: no arbitrary unpickling of a file that may come from another host.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import types
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.metadata import StorageMeta
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import (
    FSDPModule,
    MixedPrecisionPolicy,
    fully_shard,
    register_fsdp_forward_method,
)
from torch.distributed.tensor import DTensor

from ablate.core.training.params import TrainingConfigError
from ablate.upstream import hf, pytorch


def is_sharded(model) -> bool:
    return isinstance(model, FSDPModule)


def _layers(model) -> list[torch.nn.Module]:
    """The decoder layers: modules of the classes the model names unsplittable (as accelerate's
    FSDP2 plugin picks them)."""
    names = hf.no_split_modules(model)
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise TrainingConfigError(
            f"{type(model).__name__} names no decoder layer class (_no_split_modules): "
            "it cannot be sharded layer by layer"
        )
    return layers


def device_memory(device: torch.device) -> int:
    """Bytes of memory one process of this host may use on ``device`` (on a CPU: its share)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // max(local, 1)


def shard(model, compute_dtype: torch.dtype):
    """Shard ``model`` in place over the default process group; returns it. Its weights become
    fp32 first (a bf16-loaded model is upcast: its shards are the master weights)."""
    policy = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    model.float()
    for layer in _layers(model):
        fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    setattr(model, _GATHERED, types.MethodType(_gathered, model))
    register_fsdp_forward_method(model, _GATHERED)
    return model


@contextlib.contextmanager
def accumulating(model, *, last: bool) -> Iterator[None]:
    """Around a micro-batch's forward and backward: only the step's last one reduces the
    gradients. FSDP2 reads the flag in the backward, so it must hold through it."""
    if last:
        yield
        return
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


#: the root's forward method that :func:`gathered` calls
_GATHERED = "ablate_gathered"


def _gathered(model, fn, *args):
    return fn(model, *args)


def gathered(model, fn, *args):
    """``fn(model, *args)`` as a forward of the sharded ``model``'s root, its own weights
    gathered around it: the fast head calls the decoder and the lm_head, not ``model.forward``."""
    return getattr(model, _GATHERED)(fn, *args)


def full_state_dict(model) -> dict[str, torch.Tensor]:
    """The whole model's weights on the CPU of process 0 (a collective; the others get {})."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


#: the torch.distributed.checkpoint directory inside a sharded run's ``checkpoint-N``
SHARDS_DIR = "sharded_state"
#: what a torch.distributed.checkpoint load may raise: its CheckpointException (the errors of
#: every process, gathered) is a BaseException, not an Exception
LOAD_ERRORS = (Exception, CheckpointException)


def save_checkpoint(model, optimizer, directory: str | os.PathLike) -> None:
    """The weights and optimizer state of a sharded run into ``directory``/:data:`SHARDS_DIR`
    (a collective)."""
    weights, optim = get_state_dict(model, optimizer)
    dcp.save({"model": weights, "optimizer": optim}, checkpoint_id=Path(directory) / SHARDS_DIR)


_METADATA_MODULE = "torch.distributed.checkpoint.metadata"
#: Every global a torch.distributed.checkpoint ``.metadata`` pickle names (torch 2.13), as exact
#: (module, name) pairs: the metadata classes, the paths and storage info beside them, torch's
#: dtypes. Exact pairs, because pickle (protocol 4) resolves a dotted name through a module's
#: namespace: (``_METADATA_MODULE``, ``"os.system"``) is ``os.system``.
METADATA_GLOBALS = frozenset(
    {
        *(
            (_METADATA_MODULE, name)
            for name in (
                "BytesStorageMetadata",
                "ChunkStorageMetadata",
                "Metadata",
                "MetadataIndex",
                "StorageMeta",
                "TensorProperties",
                "TensorStorageMetadata",
                "_MEM_FORMAT_ENCODING",
            )
        ),
        ("pathlib", "PosixPath"),
        ("pathlib._local", "PosixPath"),  # where Python 3.13 defines it
        ("torch", "Size"),
        ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
        ("torch.serialization", "_get_layout"),
        *(("torch", name) for name, v in vars(torch).items() if isinstance(v, torch.dtype)),
    }
)


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in METADATA_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"{self.path} names {module}.{name}, which no checkpoint metadata holds: refused "
            "(the file was altered or is not this pipeline's)"
        )


class MetadataReader(dcp.FileSystemReader):
    """torch's checkpoint reader, except that ``.metadata``, which torch unpickles with
    ``pickle.load`` (running whatever a payload names), loads only the metadata classes."""

    def read_metadata(self, *args, **kwargs):
        path = pytorch.metadata_path(self, kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as f:
            metadata = _MetadataUnpickler(f, path).load()
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def metadata_file(directory: str | os.PathLike) -> Path:
    """The shard index file of :func:`save_checkpoint`'s ``directory`` (torch's own name)."""
    return Path(pytorch.metadata_path(MetadataReader(Path(directory) / SHARDS_DIR)))


def read_metadata(directory: str | os.PathLike):
    """The shard index of :func:`save_checkpoint`'s ``directory``, through :class:`MetadataReader`."""
    return MetadataReader(Path(directory) / SHARDS_DIR).read_metadata()


def _load(state: dict, directory: str | os.PathLike) -> None:
    dcp.load(state, storage_reader=MetadataReader(Path(directory) / SHARDS_DIR))


def load_model(model, directory: str | os.PathLike) -> None:
    """The weights of :func:`save_checkpoint` back into the sharded ``model`` (a collective)."""
    state = {"model": get_model_state_dict(model)}
    _load(state, directory)
    set_model_state_dict(model, state["model"])


def load_optimizer(model, optimizer, directory: str | os.PathLike) -> None:
    """The optimizer state of :func:`save_checkpoint` back into ``optimizer`` (a collective)."""
    state = {"optimizer": get_optimizer_state_dict(model, optimizer)}
    _load(state, directory)
    set_optimizer_state_dict(model, optimizer, state["optimizer"])


def local(t: torch.Tensor) -> torch.Tensor:
    """This process's shard of a (possibly) sharded tensor; a plain tensor as it is."""
    return t.to_local() if isinstance(t, DTensor) else t
