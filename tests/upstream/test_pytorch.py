"""ablate.upstream.pytorch: each touch of torch's private names, checked against the pinned torch
(2.13.0). A failure here means the pinned version changed what the package relies on: adapt the
touch in src/ablate/upstream/pytorch.py (its docstring's list names the callers)."""

from __future__ import annotations

import re
from collections import OrderedDict

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

from ablate.upstream import pytorch


def test_foreach_norms_and_copy():
    """Touch 1: each tensor's 2-norm (in the dtype asked for) and a pairwise copy."""
    xs = [torch.randn(3, 4, dtype=torch.bfloat16), torch.randn(5, dtype=torch.bfloat16)]
    norms = pytorch.foreach_norms(xs, dtype=torch.float32)
    assert [n.dtype for n in norms] == [torch.float32] * 2
    want = [torch.linalg.vector_norm(x.float()) for x in xs]
    assert torch.allclose(torch.stack(norms), torch.stack(want), rtol=1e-2)
    assert torch.allclose(
        torch.stack(pytorch.foreach_norms([x.float() for x in xs])), torch.stack(want)
    )
    targets = [torch.zeros(3, 4), torch.zeros(5)]
    pytorch.foreach_copy_(targets, xs)  # casts, as copy_ does
    assert all(torch.equal(t, x.float()) for t, x in zip(targets, xs, strict=True))


def test_recompile_limit_is_scoped():
    """Touch 3: the limit is raised within and restored after, never lowered; the compile error
    class is an exception class."""
    import torch._dynamo.config as dynamo

    before = dynamo.recompile_limit
    with pytorch.recompile_limit_at_least(before + 56):
        assert dynamo.recompile_limit == before + 56
    assert dynamo.recompile_limit == before
    with pytorch.recompile_limit_at_least(1):
        assert dynamo.recompile_limit == before
    with pytest.raises(KeyError), pytorch.recompile_limit_at_least(before + 1):
        raise KeyError("restored on an error too")
    assert dynamo.recompile_limit == before
    assert issubclass(pytorch.compile_error(), Exception)


def test_abort_process_group():
    """Touch 4: the default group is gone after the abort, without a collective."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        pytorch.abort_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_modules_compiled(monkeypatch):
    """Touch 5: ``Module.compile`` stores the compiled call in ``_compiled_call_impl``, which
    ``__call__`` runs when set; within the block the modules run it, after it they run eagerly,
    and a module is compiled once for every later block."""
    compile_ = torch.nn.Module.compile
    compiled = []

    def eager_backend(self, *args, **kwargs):  # Dynamo's tracing without Inductor's compiler
        compiled.append(self)
        compile_(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", eager_backend)
    m = torch.nn.Linear(2, 2)
    x = torch.randn(1, 2)
    for _ in range(2):
        with pytorch.modules_compiled([m]):
            assert m._compiled_call_impl is not None
            assert torch.allclose(m(x), m.forward(x))
        assert m._compiled_call_impl is None
    assert compiled == [m]
    m._compiled_call_impl = lambda *a, **k: "compiled"  # what __call__ runs when set
    assert m(x) == "compiled"
    m._compiled_call_impl = None
    assert isinstance(m(x), torch.Tensor)


def test_optimizer_hooks_are_the_six():
    """Touch 6: the hook dicts ``Optimizer.__init__`` sets are these six, and a wrapper given
    them takes hooks through the public API and runs its step hooks."""
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    assert sorted(k for k in vars(sgd) if re.fullmatch(r"_optimizer_\w+_hooks", k)) == sorted(
        pytorch.OPTIMIZER_HOOKS
    )
    assert {type(getattr(sgd, k)) for k in pytorch.OPTIMIZER_HOOKS} == {OrderedDict}

    class Wrapper(torch.optim.Optimizer):
        def __init__(self):  # no Optimizer.__init__: its state is another optimizer's
            pytorch.init_optimizer_hooks(self)

        def step(self, closure=None):
            return "stepped"

    w = Wrapper()
    assert {type(getattr(w, k)) for k in pytorch.OPTIMIZER_HOOKS} == {OrderedDict}
    w.register_step_pre_hook(lambda *a: None).remove()  # its handle holds a weakref to the dict
    w.register_state_dict_pre_hook(lambda *a: None)
    w.register_load_state_dict_post_hook(lambda *a: None)
    seen = []
    w.register_step_post_hook(lambda o, args, kwargs: seen.append(o))
    assert w.step() == "stepped" and seen == [w]


def test_metadata_path(tmp_path):
    """Touch 7: the path the reader names is where ``dcp.save`` wrote the metadata."""
    dcp.save({"w": torch.arange(4.0)}, checkpoint_id=tmp_path)
    path = pytorch.metadata_path(dcp.FileSystemReader(tmp_path))
    assert str(path) == str(tmp_path / ".metadata") and (tmp_path / ".metadata").is_file()


def test_grad_scale_protocol():
    """Touch 8: torch's fused optimizers declare the flag and divide their gradients by their
    ``grad_scale``; an optimizer without the flag is told apart."""

    def step(scale: float | None, grad: float) -> torch.Tensor:
        p = torch.nn.Parameter(torch.ones(3))
        opt = torch.optim.SGD([p], lr=0.1, fused=True)
        p.grad = torch.full((3,), grad)
        if scale is not None:
            opt.grad_scale = torch.tensor(scale)
        opt.step()
        return p.detach()

    fused = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], fused=True)
    assert pytorch.takes_grad_scale(fused)
    assert not pytorch.takes_grad_scale(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    )
    assert torch.equal(step(4.0, 2.0), step(None, 0.5))
    assert not torch.equal(step(None, 2.0), step(None, 0.5))

    @pytorch.takes_grad_scale_class
    class Declares(torch.optim.SGD):
        pass

    assert pytorch.takes_grad_scale(Declares([torch.nn.Parameter(torch.zeros(1))], lr=0.1))


def test_the_master_optimizer_takes_hooks():
    """Touch 6's caller: the fp32-master wrapper takes a step hook, which runs on its step."""
    from ablate.core.training.optim import MasterWeightsOptimizer

    p = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    opt = MasterWeightsOptimizer([{"params": [p]}], torch.optim.SGD, {"lr": 0.1})
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(o))
    p.grad = torch.ones(3, dtype=torch.bfloat16)
    opt.step()
    assert seen == [opt]
