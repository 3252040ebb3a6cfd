"""InfoNCE in groups (``infonce_group``): more rows per process, the data-parallel loss (fast).

The data-parallel equivalence through torchrun itself (one process x 4 rows in groups of 2 =
two processes x 2 rows) is tests/bridge/test_bridge_parallel.py's loss-curve test."""

from __future__ import annotations

import pytest
import torch

from ablate.bridge import grid, switches
from ablate.bridge import params as bridge_params
from ablate.bridge.pair import infonce

ROWS, GROUP, DIM, TEMPERATURE = 40, 10, 32, 0.07


def _pooled(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    soft = torch.randn(ROWS, DIM, generator=g, dtype=torch.float32, requires_grad=True)
    return soft, torch.randn(ROWS, DIM, generator=g, dtype=torch.float32)


def test_groups_of_one_process_are_the_processes_losses_and_gradients():
    """40 rows in groups of 10 = the mean of 4 processes' losses over 10 rows each (DDP's
    gradient average), loss and gradient, to float32 tolerance."""
    soft, prompt = _pooled(0)
    grouped = infonce(soft, prompt, TEMPERATURE, GROUP)
    (grad_grouped,) = torch.autograd.grad(grouped, soft)
    shares = [
        infonce(soft[i : i + GROUP], prompt[i : i + GROUP], TEMPERATURE, GROUP)
        for i in range(0, ROWS, GROUP)
    ]
    separate = torch.stack(shares).mean()
    (grad_separate,) = torch.autograd.grad(separate, soft)
    torch.testing.assert_close(grouped, separate, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_grouped, grad_separate, rtol=1e-5, atol=1e-7)
    # the whole batch as one group is another loss: its negatives are all 39 other rows
    whole = infonce(soft, prompt, TEMPERATURE, ROWS)
    assert not torch.allclose(whole, grouped, rtol=1e-3)


def test_one_group_is_the_batch_loss_as_before():
    """A group of the whole batch (the default) is the single in-batch cross-entropy, bit for bit."""
    soft, prompt = _pooled(1)
    a = torch.nn.functional.normalize(soft, dim=-1)
    b = torch.nn.functional.normalize(prompt, dim=-1)
    before = torch.nn.functional.cross_entropy(a @ b.T / TEMPERATURE, torch.arange(ROWS))
    assert torch.equal(infonce(soft, prompt, TEMPERATURE, ROWS), before)


def test_the_group_is_the_process_batch_unless_set():
    def typed(**kw):
        return bridge_params.check(bridge_params.resolve(kw))

    p = typed(batch_size=40)
    assert p.infonce_group is None and switches.infonce_group(p) == 40
    assert switches.infonce_group(typed(batch_size=40, infonce_group=10)) == 10
    with pytest.raises(bridge_params.BridgeConfigError, match=r"bridge\.infonce_group = 3"):
        bridge_params.resolve({"batch_size": 40, "infonce_group": 3})


def test_a_late_key_at_its_default_leaves_the_recorded_params_and_their_check():
    """Runs recorded before ``infonce_group`` existed keep their params (so their run ids and
    Snakemake's params); the job gets them complete; a set group is recorded."""
    p = bridge_params.resolve({})
    old = bridge_params.recorded(p)
    assert "infonce_group" not in old and set(p) - set(old) == set(bridge_params.LATE_KEYS)
    assert bridge_params.check(old).as_dict() == p
    q = bridge_params.resolve({"batch_size": 8, "infonce_group": 2})
    assert bridge_params.recorded(q)["infonce_group"] == 2 and bridge_params.check(q).as_dict() == q
    with pytest.raises(bridge_params.BridgeConfigError, match="canonical"):
        bridge_params.check({**old, "infonce_group": old["batch_size"]})


def test_grid_records_a_set_group_in_the_run_identity():
    """A group is part of the run: spelled as the data-parallel run it equals (one process of
    4 rows in groups of 2 = 2 processes of 2 rows), the job's params keep it."""
    from helpers import bridge_config

    bridge = bridge_config()
    bridge["grid"] = {"a": {}, "b": {"infonce_group": 2}}
    bridge["infer"] = {"entry": "a", "qa_entry": None, "n_samples": 8}
    a, b = (grid.resolve(bridge).entries[n] for n in ("a", "b"))
    assert "infonce_group" not in a.identity["params"] and "infonce_group" not in a.params
    assert a.params["batch_size"] == b.params["batch_size"] == 4 and b.params["infonce_group"] == 2
    assert "infonce_group" not in b.identity["params"] and b.identity["params"]["batch_size"] == 2
    assert b.identity["processes"] == 2 and a.run_id != b.run_id
