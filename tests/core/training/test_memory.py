"""ablate.core.training.memory: the recipe a run of N processes takes, which the loop decides and
the planner forecasts with (tests/core/planner/test_memory_need.py forecasts through it)."""

from __future__ import annotations

import pytest

from ablate.core.training.memory import (
    MASTERS_SHARE,
    SHARDED_MASTERS,
    SHARDED_WEIGHTS,
    data_parallel_recipe,
)

GIB = 2**30


def recipe(memory_gib: float, *, optim: str = "adamw_torch", world: int = 4, setting=None):
    """The recipe of 2**30 bf16 weights over ``world`` processes of ``memory_gib`` each."""
    return data_parallel_recipe(
        setting,
        n_params=GIB,
        world=world,
        compute_bytes=2,
        optim=optim,
        memory_bytes=int(memory_gib * GIB),
    )


def test_sharded_masters_where_its_share_of_the_memory_holds_it():
    """Per weight: the 16-bit weight and its gathered copy (2 + 2 bytes), the fp32 gradient (4),
    and a quarter of the fp32 master and AdamW's two states (12 / 4): 11 GiB."""
    assert MASTERS_SHARE == 0.5
    got, why = recipe(22)
    assert got == SHARDED_MASTERS
    assert (
        why
        == "sharded_masters keeps 11.0 GiB of weights, gradients and optimizer state, within 50% of 22 GiB"
    )
    got, why = recipe(21.9)
    assert got == SHARDED_WEIGHTS and why.endswith("over 50% of 22 GiB")


def test_the_optimizer_state_and_the_process_count_change_the_need():
    assert "9.0 GiB" in recipe(18, optim="adafactor")[1]  # factored: no per-weight state
    assert recipe(18, optim="adafactor")[0] == SHARDED_MASTERS
    assert "11.0 GiB" in recipe(22, optim="some_new_optimizer")[1]  # unknown: AdamW's two
    assert "20.0 GiB" in recipe(22, world=1)[1]  # one process keeps the whole master and state
    assert recipe(22, world=1)[0] == SHARDED_WEIGHTS


@pytest.mark.parametrize("setting", [SHARDED_MASTERS, SHARDED_WEIGHTS])
def test_a_set_data_parallel_is_taken_whatever_the_memory(setting):
    got, why = recipe(1 if setting == SHARDED_MASTERS else 1000, setting=setting)
    assert got == setting
    assert why.startswith(f"data_parallel: {setting} (sharded_masters keeps 11.0 GiB")
