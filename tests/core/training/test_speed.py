"""The step-speed changes of the training loop keep its math: the clip fused into the optimizer,
regional compilation, the per-token cross-entropy's layouts (bench/results/mfu_h100.md); the token
count without a sync per micro-batch and the autocast around the fast head are the loop's own
(tests/core/training/test_loop.py)."""

from __future__ import annotations

import pytest
import torch

from ablate.core.models.modeling import load_causal_lm
from ablate.core.training import params, speed
from ablate.core.training.optim import MasterWeightsOptimizer


def _clipped_step(fused: bool, max_norm: float):
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 4).to(torch.bfloat16)
    groups = [{"params": list(lin.parameters()), "weight_decay": 0.1}]
    opt = MasterWeightsOptimizer(groups, torch.optim.AdamW, {"lr": 1e-2, "fused": fused})
    x = torch.randn(16, 8).to(torch.bfloat16)
    (lin(x).float() ** 2).sum().backward()
    norm = opt.clip_(max_norm)
    opt.step()
    return float(norm), [m.clone() for m in opt.master_params], opt


@pytest.mark.parametrize("max_norm", [0.5, 1e6])  # clipping active / inactive
def test_fused_clip_equals_torch_clip(max_norm):
    """Torch's fused AdamW divides by the clip factor inside its kernel (its AMP grad_scale); the
    result equals clip_grads_with_norm_ followed by the plain AdamW step."""
    n_fused, fused, opt = _clipped_step(True, max_norm)
    n_plain, plain, _ = _clipped_step(False, max_norm)
    assert opt.inner._step_supports_amp_scaling  # the fused path was taken
    assert n_fused == pytest.approx(n_plain, rel=1e-6)
    if max_norm < 1:
        assert n_fused > 10 * max_norm  # the clip was active
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert not hasattr(opt.inner, "grad_scale")  # nothing left for the next step


def test_compile_layers_is_regional(tiny_model_dir):
    """Every decoder layer compiled in place: the parameter names (checkpoints, state_dict) stay."""
    model = load_causal_lm(tiny_model_dir, dtype=torch.float32)
    names = list(model.state_dict())
    n = speed.compile_layers(model)
    layers = model.get_decoder().layers
    assert n == len(layers) > 0
    assert all(layer._compiled_call_impl is not None for layer in layers)
    assert list(model.state_dict()) == names
    with pytest.raises(TypeError, match="no decoder layers"):
        speed.compile_layers(torch.nn.Linear(2, 2))


def test_layers_compiled_only_within(tiny_model_dir, monkeypatch):
    """speed.layers_compiled: the layers run compiled inside the block, eager after it, and
    each layer is compiled once for every later block (torch.compile itself stubbed: this
    checks the switching, not Inductor)."""
    compiled = []

    def fake_compile(self, *args, **kwargs):
        compiled.append(self)
        self._compiled_call_impl = self._call_impl

    monkeypatch.setattr(torch.nn.Module, "compile", fake_compile)
    model = load_causal_lm(tiny_model_dir, dtype=torch.float32)
    layers = model.get_decoder().layers
    for _ in range(2):
        with speed.layers_compiled(model):
            assert all(layer._compiled_call_impl is not None for layer in layers)
        assert all(layer._compiled_call_impl is None for layer in layers)
    assert len(compiled) == len(layers)
    with speed.layers_compiled(model, on=False):
        assert all(layer._compiled_call_impl is None for layer in layers)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_token_cross_entropy_layouts_agree(reduction):
    """The flattened rows (the CUDA path) and the class-second layout (the CPU path, bit for bit
    the old loss) give one loss and one gradient, ignored positions included."""
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 50, dtype=torch.float64)
    labels = torch.randint(0, 50, (3, 7))
    labels[0, 4:] = params.IGNORE_INDEX
    labels[2, 6] = params.IGNORE_INDEX
    out = {}
    # the CUDA path's layout, and token_cross_entropy on this CPU (the class-second layout)
    for flat, layout in ((True, speed.rows_cross_entropy), (False, speed.token_cross_entropy)):
        x = logits.clone().requires_grad_(True)
        loss = layout(x, labels, params.IGNORE_INDEX, reduction)
        loss.backward()
        out[flat] = (loss.detach(), x.grad)
    torch.testing.assert_close(out[True], out[False], rtol=1e-12, atol=1e-12)
    old = torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2),
        labels,
        ignore_index=params.IGNORE_INDEX,
        reduction=reduction,
    )
    cpu = speed.token_cross_entropy(logits.float(), labels, params.IGNORE_INDEX, reduction)
    assert torch.equal(cpu, old)  # the CPU default is the old layout: same bits


def test_cuda_only_speed_settings_leave_the_cpu_alone():
    """Fused AdamW and TF32 are CUDA settings: on CPU parameters and a CPU device nothing
    changes (the embedded runs' numbers); parameters on a GPU get the fused kernel."""
    from types import SimpleNamespace

    assert speed.fp32_optimizer_kwargs(torch.nn.Linear(2, 2).parameters()) == {}
    assert speed.fp32_optimizer_kwargs([SimpleNamespace(is_cuda=True)]) == {"fused": True}
    before = torch.backends.cuda.matmul.allow_tf32
    speed.tf32_matmuls("cpu")
    assert torch.backends.cuda.matmul.allow_tf32 == before
