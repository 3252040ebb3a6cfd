"""FusedAdafactor (ablate.core.training.adafactor) against transformers' Adafactor, both as the
inner optimizer of MasterWeightsOptimizer with the loop's options (optim: adafactor): the same
parameters and gradients, an lr that a scheduler changes every step, a gradient clip (torch's
in-place clip for HF, the grad_scale divisor for ours). Tolerance: rtol 1e-5, atol 1e-7 (fp32; the
fused reductions sum in another order). One process-wide compiled function serves every test."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters
from transformers.optimization import Adafactor

from ablate.core.training.adafactor import FusedAdafactor
from ablate.core.training.optim import MasterWeightsOptimizer

# the loop's kwargs for optim: adafactor (ablate.core.training.optim.optimizer_class; HF's
# defaults otherwise, warmup_init False among them)
KW = dict(scale_parameter=False, relative_step=False, warmup_init=False, lr=1e-2)
SHAPES = [(12, 7), (7,), (2, 3), (3,)]  # 2-D non-square, 1-D, tiny 2-D, tiny 1-D
TOL = dict(rtol=1e-5, atol=1e-7)


def _master(cls, weight_decay: float) -> MasterWeightsOptimizer:
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]
    groups = [  # decay on the 2-D ones, as the loop's two groups (optim.decay_groups)
        {"params": [params[0], params[2]], "weight_decay": weight_decay},
        {"params": [params[1], params[3]], "weight_decay": 0.0},
    ]
    return MasterWeightsOptimizer(groups, cls, dict(KW))


def _run(opt: MasterWeightsOptimizer, steps: int, max_norm: float | None, first: int = 0):
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))  # lr moves every step
    for _ in range(first):
        sched.step()
    norms = []
    for i in range(first, first + steps):
        gen = torch.Generator().manual_seed(100 + i)
        for m in opt.master_params:
            m.grad = torch.randn(m.shape, generator=gen) * 3.0
        if max_norm is not None:
            norms.append(float(opt.clip_(max_norm)))
        opt.step()
        sched.step()
    return norms


def _assert_same(ours: MasterWeightsOptimizer, hf: MasterWeightsOptimizer) -> None:
    for a, b in zip(ours.master_params, hf.master_params, strict=True):
        torch.testing.assert_close(a, b, **TOL)
        sa, sb = ours.state[a], hf.state[b]
        assert sa.keys() == sb.keys() and sa["step"] == sb["step"]
        for k in sa.keys() - {"RMS"}:  # HF's record of the weights' RMS, unused (not recomputed)
            torch.testing.assert_close(torch.as_tensor(sa[k]), torch.as_tensor(sb[k]), **TOL)


@pytest.mark.parametrize(("weight_decay", "max_norm"), [(0.0, None), (0.1, 1.0)])
def test_fused_adafactor_equals_hf(weight_decay, max_norm):
    ours, hf = _master(FusedAdafactor, weight_decay), _master(Adafactor, weight_decay)
    start = [m.clone() for m in ours.master_params]
    norms = _run(ours, 4, max_norm)
    assert _run(hf, 4, max_norm) == pytest.approx(norms)
    if max_norm is not None:
        assert min(norms) > max_norm  # the clip acted on every step
    _assert_same(ours, hf)
    assert not torch.allclose(ours.master_params[0], start[0], **TOL)  # it trained
    # weight decay is seen: the same run without it ends elsewhere
    if weight_decay:
        plain = _master(FusedAdafactor, 0.0)
        _run(plain, 4, max_norm)
        assert not torch.allclose(plain.master_params[0], ours.master_params[0], **TOL)


def test_state_dict_round_trips_with_hf():
    ours, hf = _master(FusedAdafactor, 0.1), _master(Adafactor, 0.1)
    _run(ours, 2, 1.0)
    _run(hf, 2, 1.0)
    # swap the states: each continues from the other's (HF's layout both ways)
    ours_sd, hf_sd = ours.state_dict(), hf.state_dict()
    ours.load_state_dict(hf_sd)
    hf.load_state_dict(ours_sd)
    _run(ours, 2, 1.0, first=2)
    _run(hf, 2, 1.0, first=2)
    _assert_same(ours, hf)


def test_no_recompile_after_the_first_step():
    opt = _master(FusedAdafactor, 0.1)
    _run(opt, 1, 1.0)  # every shape compiled (or found compiled by an earlier test)
    graphs = counters["stats"]["unique_graphs"]
    _run(opt, 3, 1.0, first=1)  # new lr, beta2t and clip factor on each
    _run(opt, 1, None, first=4)  # no clip pending: divides by a cached 1.0, same graph
    assert counters["stats"]["unique_graphs"] == graphs


def test_plain_clip_scales_the_master_grads():
    """A non-fused inner optimizer gets torch's in-place clip: the masters' grads end at norm
    max_norm. (It was handed the grads, not the tensors holding them, and clipped nothing; one
    step of Adam or Adafactor barely depends on the gradient's scale, so only this saw it.)"""
    opt = _master(Adafactor, 0.0)
    for m in opt.master_params:
        m.grad = torch.full(m.shape, 3.0)
    norm = opt.clip_(1.0)
    assert float(norm) > 10
    clipped = torch.nn.utils.get_total_norm([m.grad for m in opt.master_params])
    assert float(clipped) == pytest.approx(1.0, rel=1e-5)


def test_the_loop_picks_it_for_adafactor_on_cuda():
    """optim: adafactor with master weights: FusedAdafactor where the params are on CUDA (faked
    here: this test runs on CPU), HF's own loop on CPU (compiling costs ~9 s there for ~3 ms a
    step, docs/training.md), any other optimizer untouched."""
    from types import SimpleNamespace

    from ablate.core.training.optim import fused_inner, optimizer_class
    from ablate.core.training.params import resolve_params

    cls, kwargs = optimizer_class(
        resolve_params({"optim": "adafactor", "learning_rate": 1e-2}, "finetune")
    )
    assert cls is Adafactor and FusedAdafactor.supports(kwargs)  # the loop's own kwargs
    # the settings the tests here step HF's Adafactor with
    assert (
        Adafactor([torch.zeros(1)], **kwargs).defaults == Adafactor([torch.zeros(1)], **KW).defaults
    )
    cuda, cpu = SimpleNamespace(is_cuda=True), torch.zeros(1)
    assert fused_inner(cls, kwargs, [cuda, cuda]) is FusedAdafactor
    assert fused_inner(cls, kwargs, [cuda, cpu]) is Adafactor
    assert fused_inner(cls, {**kwargs, "beta1": 0.9}, [cuda]) is Adafactor
    assert fused_inner(torch.optim.AdamW, {}, [cuda]) is torch.optim.AdamW


def test_a_compile_failure_falls_back_to_the_same_update_uncompiled(monkeypatch):
    """Where torch.compile fails on a host, the step runs the same function eagerly (one warning)
    and still equals HF's."""
    from ablate.core.training import adafactor

    def broken(*args):
        raise torch._dynamo.exc.TorchDynamoException("no compiler here")

    failing = {(name, True): broken for name in ("factored", "unfactored")}
    monkeypatch.setattr(adafactor, "_compiled", failing)
    ours, hf = _master(FusedAdafactor, 0.1), _master(Adafactor, 0.1)
    with pytest.warns(UserWarning, match="runs uncompiled"):
        _run(ours, 2, 1.0)
    _run(hf, 2, 1.0)
    _assert_same(ours, hf)
    assert adafactor._compiled[("factored", True)] is adafactor._EAGER["factored"]


def _bf16_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 12), torch.nn.LayerNorm(12), torch.nn.Linear(12, 5)
    )
    return model.to(torch.bfloat16)


def _train_bf16(cls, micro_batches: int, steps: int = 3):
    """``steps`` clipped steps of a bf16 model through the masters' hooks, as the loop runs them."""
    model = _bf16_model()
    params = list(model.parameters())
    opt = MasterWeightsOptimizer([{"params": params, "weight_decay": 0.1}], cls, dict(KW))
    kept = []
    for step in range(steps):
        for i in range(micro_batches):
            x = torch.randn(4, 6, generator=torch.Generator().manual_seed(10 * step + i))
            model(x.to(torch.bfloat16)).float().pow(2).mean().backward()
        kept.append({g.dtype for g in opt.grads()})
        opt.clip_(0.5)
        opt.step()
    return model, opt, kept


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_16_bit_gradients_and_weights_written_in_the_step_equal_the_fp32_path(micro_batches):
    """With FusedAdafactor the hooks keep one micro-batch's bf16 gradient uncast (two are summed
    in fp32) and the step writes the bf16 weights itself: the masters equal HF's Adafactor fed
    fp32 gradients, and every weight is its master rounded to bf16."""
    ours, opt, kept = _train_bf16(FusedAdafactor, micro_batches)
    hf, hf_opt, hf_kept = _train_bf16(Adafactor, micro_batches)
    assert kept == [{torch.bfloat16 if micro_batches == 1 else torch.float32}] * 3
    assert hf_kept == [{torch.float32}] * 3  # HF's loop: the fp32 copy as before
    for a, b in zip(opt.master_params, hf_opt.master_params, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    for w, m in zip(opt.model_params, opt.master_params, strict=True):
        assert torch.equal(w, m.to(torch.bfloat16))  # mirrored, no separate copy pass
    assert not any(g is not None for g in opt.grads())  # cleared after the step
