"""torch's private names the package uses, pinned to torch 2.13.0 (pyproject.toml).

1. ``torch._foreach_norm``, ``torch._foreach_copy_`` (:func:`foreach_norms`,
   :func:`foreach_copy_`): one launch for a list of tensors, which no public API takes, for the
   masters' optimizers (``core/training/optim.py``, ``sharded_masters.py``). Test:
   ``test_foreach_norms_and_copy``.
2. (retired; the number stays so that the others keep theirs)
3. ``torch._dynamo.config.recompile_limit``, ``torch._dynamo.exc.TorchDynamoException``
   (:func:`recompile_limit_at_least`, :func:`compile_error`): a step compiled for many shapes
   passes the default 8 recompiles, then runs eagerly; ``torch.compiler.config`` has no such
   setting. Test: ``test_recompile_limit_is_scoped``.
4. ``distributed_c10d._abort_process_group`` (:func:`abort_process_group`): leave a process group
   after an error without waiting for peers (``destroy_process_group`` waits for pending NCCL
   work; ``core/execution/parallel.py`` ``abort``). Test: ``test_abort_process_group``.
5. ``nn.Module._compiled_call_impl`` (:func:`modules_compiled`): no public API undoes
   ``compile()`` (``core/training/speed.py`` ``layers_compiled``). Test: ``test_modules_compiled``.
6. The six ``Optimizer._optimizer_*_hooks`` and ``Optimizer._patch_step_function``
   (:func:`init_optimizer_hooks`): what ``Optimizer.__init__`` gives for hooks, for a wrapper that
   skips it (``MasterWeightsOptimizer``). Tests: ``test_optimizer_hooks_are_the_six``,
   ``test_the_master_optimizer_takes_hooks``.
7. ``FileSystemReader._get_metadata_path`` (:func:`metadata_path`): for a restricted unpickler of
   ``.metadata`` (``core/training/sharding.py`` ``MetadataReader``). Test: ``test_metadata_path``.
8. ``Optimizer._step_supports_amp_scaling`` (:func:`takes_grad_scale`,
   :func:`takes_grad_scale_class`): how ``GradScaler`` knows a step divides the gradients by
   ``grad_scale``, where the masters' optimizers hand the clip factor. Test:
   ``test_grad_scale_protocol``.

The tests are in tests/upstream/test_pytorch.py. ``torch._dynamo`` is imported where a function
needs it: importing it takes seconds.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist

#: The six hook dicts ``torch.optim.Optimizer.__init__`` sets (touch 6).
OPTIMIZER_HOOKS = tuple(
    f"_optimizer_{when}_{side}_hooks"
    for when in ("step", "state_dict", "load_state_dict")
    for side in ("pre", "post")
)


def foreach_norms(
    tensors: Sequence[torch.Tensor], dtype: torch.dtype | None = None
) -> list[torch.Tensor]:
    """Each tensor's 2-norm, in one launch (touch 1)."""
    return list(torch._foreach_norm(list(tensors), 2.0, dtype=dtype))


def foreach_copy_(targets: Sequence[torch.Tensor], sources: Sequence[torch.Tensor]) -> None:
    """``t.copy_(s)`` for each pair, in one launch (touch 1)."""
    torch._foreach_copy_(list(targets), list(sources))


@contextlib.contextmanager
def recompile_limit_at_least(limit: int) -> Iterator[None]:
    """Within: torch's recompile limit is at least ``limit`` (touch 3)."""
    import torch._dynamo.config as dynamo

    with dynamo.patch(recompile_limit=max(dynamo.recompile_limit, limit)):
        yield


def compile_error() -> type[Exception]:
    """The base class of torch.compile's errors (touch 3), for an ``except`` clause."""
    import torch._dynamo.exc

    return torch._dynamo.exc.TorchDynamoException


def abort_process_group() -> None:
    """Abort the default process group without waiting for pending work or peers (touch 4)."""
    dist.distributed_c10d._abort_process_group()


@contextlib.contextmanager
def modules_compiled(modules: Sequence[torch.nn.Module]) -> Iterator[None]:
    """Within: each module runs compiled (compiled once, kept for the next time) (touch 5)."""
    for m in modules:
        if getattr(m, "_ablate_compiled", None) is None:
            m.compile()
            m._ablate_compiled = m._compiled_call_impl
        m._compiled_call_impl = m._ablate_compiled
    try:
        yield
    finally:
        for m in modules:
            m._compiled_call_impl = None


def init_optimizer_hooks(optimizer: torch.optim.Optimizer) -> None:
    """What ``Optimizer.__init__`` gives for hooks, for a wrapper that skips it (touch 6)."""
    for name in OPTIMIZER_HOOKS:
        setattr(optimizer, name, OrderedDict())  # as torch's: a hook's handle holds a weakref to it
    optimizer._patch_step_function()  # else the step hooks were accepted and never ran


def takes_grad_scale(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer``'s step divides the gradients by its ``grad_scale`` (touch 8)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


def takes_grad_scale_class(cls: type) -> type:
    """Declare that ``cls``'s step divides the gradients by its ``grad_scale`` (touch 8)."""
    cls._step_supports_amp_scaling = True
    return cls


def metadata_path(reader, rank: int | None = None):
    """The path of the ``.metadata`` file a ``FileSystemReader`` reads (touch 7)."""
    return reader._get_metadata_path(rank)
