"""torch's private names the package uses, pinned to torch 2.13.0 (pyproject.toml).

1. ``torch._foreach_norm`` / ``torch._foreach_copy_`` (:func:`foreach_norms`,
   :func:`foreach_copy_`): one kernel launch for a list of tensors; the masters' optimizers
   (``core/training/optim.py``, ``sharded_masters.py``) copy and measure thousands of parameters
   a step. torch's own ``clip_grad_norm_`` and optimizers call them; no public API takes a list.
   Test: ``test_pytorch.py::test_foreach_norms_and_copy``.
2. (retired) ``torch._assert_async``: it went with ``policy_forward_kwargs(right_padded=)``, a
   switch only tests flipped; the number stays so that the others keep theirs.
3. ``torch._dynamo.config.recompile_limit`` and ``torch._dynamo.exc.TorchDynamoException``
   (:func:`recompile_limit_at_least`, :func:`compile_error`): a compiled step called with many
   shapes (the fused Adafactor's parameter groups, the static decode's lengths) recompiles more
   than the default 8 times; past the limit torch runs it eagerly. ``torch.compiler.config`` has
   no such setting. Raised for the call only (the config's own ``patch``), restored after.
   Test: ``test_pytorch.py::test_recompile_limit_is_scoped``.
4. ``torch.distributed.distributed_c10d._abort_process_group`` (:func:`abort_process_group`):
   leave a process group after an error without waiting for peers (``core/execution/parallel.py``
   ``abort``); ``destroy_process_group`` waits for pending NCCL work. Test:
   ``test_pytorch.py::test_abort_process_group``.
5. ``nn.Module._compiled_call_impl`` (:func:`modules_compiled`): ``Module.compile()`` stores the
   compiled call there and ``__call__`` runs it when set; setting it back to None runs the module
   eagerly again, and keeping the compiled one (as ``_ablate_compiled``) reuses it next time
   (``core/training/speed.py`` ``layers_compiled``). No public API undoes ``compile()``. Test:
   ``test_pytorch.py::test_modules_compiled``.
6. ``Optimizer._optimizer_{step,state_dict,load_state_dict}_{pre,post}_hooks`` (six dicts) and
   ``Optimizer._patch_step_function`` (:func:`init_optimizer_hooks`): a wrapper optimizer that
   does not call ``Optimizer.__init__`` (``MasterWeightsOptimizer``: its params and state are its
   inner optimizer's) needs what ``__init__`` gives for hooks (LR schedulers and accelerate use
   the Optimizer API): the hook dicts, ordered dicts as torch's (a hook's handle keeps a weak
   reference to its dict: plain dicts refused every ``register_*_hook``), and the class's
   ``step`` wrapped to run the step hooks (else they were accepted and never ran). Tests:
   ``test_pytorch.py::test_optimizer_hooks_are_the_six``,
   ``::test_the_master_optimizer_takes_hooks``.
7. ``FileSystemReader._get_metadata_path`` (:func:`metadata_path`): where a checkpoint's
   ``.metadata`` file lies, for the reader that unpickles it with a restricted unpickler
   (``core/training/sharding.py`` ``MetadataReader``). Test:
   ``test_pytorch.py::test_metadata_path``.
8. ``Optimizer._step_supports_amp_scaling`` (:func:`takes_grad_scale`,
   :func:`takes_grad_scale_class`): the flag by which torch's ``GradScaler`` knows an optimizer
   divides its gradients by its ``grad_scale`` attribute inside its step (the fused AdamW, and
   ``FusedAdafactor``, which declares it); the masters' optimizers hand the clip factor there
   (one pass over the gradients fewer). Test: ``test_pytorch.py::test_grad_scale_protocol``.

``torch._dynamo`` is imported where a function needs it: importing it takes seconds.
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
    """Within: torch recompiles a function up to ``limit`` times (or its own limit, if higher)
    before running it eagerly; after: the limit as it was (touch 3)."""
    import torch._dynamo.config as dynamo

    with dynamo.patch(recompile_limit=max(dynamo.recompile_limit, limit)):
        yield


def compile_error() -> type[Exception]:
    """The base class of torch.compile's errors (touch 3); for an ``except`` clause, which
    evaluates it only when something was raised."""
    import torch._dynamo.exc

    return torch._dynamo.exc.TorchDynamoException


def abort_process_group() -> None:
    """Abort the default process group without waiting for pending work or peers (touch 4)."""
    dist.distributed_c10d._abort_process_group()


@contextlib.contextmanager
def modules_compiled(modules: Sequence[torch.nn.Module]) -> Iterator[None]:
    """Within: each module runs compiled (compiled at its first use, kept for the next);
    after: eager again (touch 5)."""
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
    """Give a wrapper optimizer that skips ``Optimizer.__init__`` the empty hook dicts the
    ``Optimizer`` methods read, and its class's ``step`` the hooks' wrapper, as ``__init__``
    does (touch 6)."""
    for name in OPTIMIZER_HOOKS:
        setattr(optimizer, name, OrderedDict())  # as torch's: a hook's handle holds a weakref to it
    optimizer._patch_step_function()


def takes_grad_scale(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer``'s step divides the gradients by its ``grad_scale`` (touch 8)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


def takes_grad_scale_class(cls: type) -> type:
    """Declare that ``cls``'s step divides the gradients by its ``grad_scale`` (touch 8)."""
    cls._step_supports_amp_scaling = True
    return cls


def metadata_path(reader, rank: int | None = None):
    """The path of the checkpoint's ``.metadata`` file ``reader`` (a ``FileSystemReader``)
    reads (touch 7)."""
    return reader._get_metadata_path(rank)
