"""ablate.core.training.sharding, its parts that run in one process: the refusal of a model
without decoder layers, a CPU process's memory, the gradient sync of a step's micro-batches, the
shard index read back. Sharded training itself runs in several processes, tested by feature:
tests/core/test_sharded_recipe.py (1, 2 and 4 processes train alike) and
tests/core/test_sharded_fast_head.py (the fast head through :func:`sharding.gathered`)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed.checkpoint as dcp

from ablate.core.training import sharding
from ablate.core.training.params import TrainingConfigError


def test_a_model_without_decoder_layers_is_refused_in_one_line():
    with pytest.raises(TrainingConfigError) as refused:
        sharding.shard(torch.nn.Linear(2, 2), torch.bfloat16)
    assert str(refused.value) == (
        "Linear names no decoder layer class (_no_split_modules): it cannot be sharded layer by layer"
    )


def test_the_processes_of_a_cpu_host_share_its_memory(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    whole = sharding.device_memory(cpu)
    assert whole > 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert sharding.device_memory(cpu) == whole // 4


class _Model:
    """What :func:`sharding.accumulating` calls of a sharded model."""

    def __init__(self):
        self.calls = []

    def set_requires_gradient_sync(self, on: bool) -> None:
        self.calls.append(on)


def test_only_the_last_micro_batch_reduces_the_gradients():
    model = _Model()
    with sharding.accumulating(model, last=True):
        assert model.calls == []
    with sharding.accumulating(model, last=False):
        assert model.calls == [False]  # held through the backward
    assert model.calls == [False, True]
    with pytest.raises(RuntimeError), sharding.accumulating(model, last=False):
        raise RuntimeError("a failed backward")
    assert model.calls[-1] is True  # the sync is back on for the next step


def test_an_unsharded_model_and_tensor_are_as_they_are():
    net = torch.nn.Linear(2, 2)
    assert not sharding.is_sharded(net)
    assert sharding.local(net.weight) is net.weight


def test_the_shard_index_reads_back(tmp_path):
    net = torch.nn.Linear(3, 2)
    with pytest.warns(UserWarning):  # torch: no process group, so a single process
        dcp.save({"model": net.state_dict()}, checkpoint_id=tmp_path / sharding.SHARDS_DIR)
    index = sharding.read_metadata(tmp_path)
    assert set(index.state_dict_metadata) == {"model.weight", "model.bias"}
    assert tuple(index.state_dict_metadata["model.weight"].size) == (2, 3)
