"""The translator's recipe for the core's loop (ablate.bridge.training.recipe): its data order, its
steps' host reads (none but a logging step's)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from bridge_fixtures import EXACT

import ablate
from ablate.bridge import params as bridge_params
from ablate.bridge import translator as tr
from ablate.bridge import world
from ablate.bridge.pair import load_pair
from ablate.bridge.training import recipe
from ablate.bridge.training.recipe import BatchOrder
from ablate.core.training import loop


def test_a_step_draws_its_batch_whatever_the_steps_drawn_before():
    """A resumed run asks for its first step out of order: it gets the batch a run from step 0
    trained on there. Each epoch is a permutation of the items, its incomplete last batch
    dropped (10 items, batches of 4: 2 a epoch)."""
    in_order = BatchOrder(10, 4, seed=3)
    batches = [in_order(s) for s in range(6)]
    resumed = BatchOrder(10, 4, seed=3)
    assert [resumed(s) for s in (4, 5, 2)] == [batches[4], batches[5], batches[2]]
    for epoch in range(3):
        seen = batches[2 * epoch] + batches[2 * epoch + 1]
        assert len(set(seen)) == 8 and set(seen) <= set(range(10))
    assert batches[:2] != batches[2:4]  # each epoch its own shuffle
    assert BatchOrder(10, 4, seed=4)(0) != batches[0]


#: the tensor methods that read a value to the host (a device sync on a GPU)
HOST_READS = ("item", "tolist", "__float__", "__int__", "__bool__", "__format__", "cpu", "numpy")
SRC = str(Path(ablate.__file__).parent)


def count_host_reads(monkeypatch) -> list[str]:
    """Every host read of a tensor that the project's code makes from now on (torch's own, e.g.
    the optimizer's step counter on the CPU, are not the project's), as ``file:line method``."""
    reads: list[str] = []

    def counted(name: str):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(SRC):
                reads.append(f"{caller.f_code.co_filename}:{caller.f_lineno} {name}")
            return original(self, *args, **kwargs)

        return read

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    return reads


def test_a_step_reads_nothing_to_the_host_a_logging_step_once(
    bridge_world, bridge_cards, monkeypatch
):
    """The loss and its four parts and the tokens stay on the device through the steps; the
    recipe's logged parts are one read, at a logging step (each had been a read per micro-batch:
    a device sync that stalls the queue of a GPU's kernels)."""
    params = {**EXACT, "log_every": 3, "infonce_weight": 0.1, "prompt_align_weight": 0.1}
    p = bridge_params.check(bridge_params.resolve(params))
    items = world.load_dataset(bridge_world["gsm8k_train"], "gsm8k")
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    torch.manual_seed(p.seed)
    translator = tr.build(p, pair.source, pair.target).to(pair.device)
    trainer = recipe.translator_trainer(pair, translator, items, p, "reads")
    reads = count_host_reads(monkeypatch)
    for _ in range(3):
        loop.step(trainer, loop.step_examples(trainer, trainer.state.step))
        assert reads == []
    logged = trainer.spec.recipe.log_parts()
    assert set(logged) == {"loss", "nll", "kl", "infonce", "align"}
    assert all(isinstance(v, float) for v in logged.values())
    assert len(reads) == 1, reads
