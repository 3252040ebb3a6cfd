"""The optimizer of a run (ablate.core.training.optim): fp32 master weights of 16-bit weights
(MasterWeightsOptimizer): updates bf16 would round away, gradients accumulated in fp32, its state
round-tripped, a dropped optimizer freed."""

from __future__ import annotations

import torch

from ablate.core.training.optim import MasterWeightsOptimizer


def test_master_weights_keep_updates_that_bf16_rounds_away():
    def train(master: bool):
        lin = torch.nn.Linear(4, 1, bias=False).to(torch.bfloat16)
        torch.nn.init.ones_(lin.weight)
        groups = [{"params": [lin.weight], "weight_decay": 0.0}]
        opt = (
            MasterWeightsOptimizer(groups, torch.optim.SGD, {"lr": 1e-4})
            if master
            else torch.optim.SGD(lin.parameters(), lr=1e-4)
        )
        for _ in range(50):
            lin(torch.ones(1, 4, dtype=torch.bfloat16)).sum().backward()  # d/dw = 1
            opt.step()
            opt.zero_grad()
        return lin.weight, opt

    w_plain, _ = train(False)
    assert torch.all(w_plain == 1.0)  # 1 - 1e-4 rounds back to 1 in bf16: every update lost
    w, opt = train(True)
    torch.testing.assert_close(opt.master_params[0], torch.full((1, 4), 0.995), rtol=0, atol=1e-6)
    assert torch.all(w == torch.tensor(0.995).to(torch.bfloat16))


def test_a_dropped_master_optimizer_is_freed_and_another_takes_its_weights():
    """The gradient hooks hold the optimizer weakly: a dropped run's masters and state are freed
    (a benchmark builds several runs in one process; before, a second 3.4 B run found the GPU
    full), and a new optimizer on the same weights trains (before: its first backward failed)."""
    import gc
    import weakref

    from ablate.core.training import optim
    from ablate.core.training.params import resolve_params

    lin = torch.nn.Linear(64, 64).to(torch.bfloat16)
    p = resolve_params(
        {"learning_rate": 1e-3, "optim": "adamw_torch", "weight_decay": 0.0}, "finetune"
    )
    first = optim.build_optimizer(lin, p, master_weights=True, sharded=False)
    lin(torch.randn(2, 64, dtype=torch.bfloat16)).sum().backward()
    first.step()
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None
    second = optim.build_optimizer(lin, p, master_weights=True, sharded=False)
    before = lin.weight.detach().clone()
    lin(torch.randn(2, 64, dtype=torch.bfloat16)).sum().backward()
    second.step()
    assert not torch.equal(before, lin.weight)


def test_master_weights_accumulate_fp32_grads_and_round_trip_state():
    lin = torch.nn.Linear(3, 2).to(torch.bfloat16)
    groups = [{"params": list(lin.parameters()), "weight_decay": 0.0}]
    opt = MasterWeightsOptimizer(groups, torch.optim.AdamW, {"lr": 1e-3})
    x = torch.randn(5, 3).to(torch.bfloat16)
    for _ in range(2):  # two micro-batches
        lin(x).sum().backward()
    assert lin.weight.grad is None  # moved to the master by the hook
    g = opt.master_params[0].grad
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, 2 * x.float().sum(0).expand(2, 3), rtol=1e-2, atol=1e-2)
    opt.step()
    assert all(
        m.grad is None for m in opt.master_params
    )  # the Trainer's model.zero_grad() cannot clear them
    state = opt.state_dict()
    lin2 = torch.nn.Linear(3, 2).to(torch.bfloat16)
    opt2 = MasterWeightsOptimizer(
        [{"params": list(lin2.parameters()), "weight_decay": 0.0}], torch.optim.AdamW, {"lr": 1e-3}
    )
    opt2.load_state_dict(state)
    for a, b in zip(opt.master_params, opt2.master_params):
        assert torch.equal(a, b)
    assert torch.equal(lin.weight, lin2.weight)
    assert torch.equal(
        opt.inner.state_dict()["state"][0]["exp_avg"],
        opt2.inner.state_dict()["state"][0]["exp_avg"],
    )
