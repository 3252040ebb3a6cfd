"""The translator's recipe for the core's loop (ablate.bridge.training.recipe): its data order."""

from __future__ import annotations

from ablate.bridge.training.recipe import BatchOrder


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
