"""Frozen models' hidden states computed once and read back (ablate.bridge.states), on the micro
model pair of bridge_fixtures: cached states give the live path's loss, a length-batched cache reads
as the ordered one, and over a job's GPUs (the core's launcher, 2 gloo processes on CPU; slow) the
cache is the one one process writes, byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from bridge_fixtures import EXACT, MICRO_PARAMS

from ablate.bridge import params as bridge_params
from ablate.bridge import states, world
from ablate.bridge import translator as tr
from ablate.bridge.pair import load_pair
from ablate.bridge.training import recipe
from ablate.core.execution import parallel
from ablate.core.training import loop

ROOT = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a cache but its records (summary.json and its history: times)."""
    files = sorted(folder.rglob("*.*"))
    return {str(f.relative_to(folder)): f.read_bytes() for f in files if "summary" not in f.name}


@pytest.mark.slow  # the core launcher, 2 processes
@pytest.mark.parametrize("what, role", [("source", "source"), ("teacher", "target")])
def test_two_processes_write_the_one_process_cache(
    what, role, bridge_world, bridge_cards, tmp_path, monkeypatch
):
    """Batches of 3 over 16 train items (6 batches: 3 each) and 8 test items (3 batches: 2 and
    1, a short last round): every shard and index file equal to one process's."""
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)  # the launcher's processes import this checkout
    p = bridge_params.resolve({**MICRO_PARAMS, "model_dtype": "float32"})
    out, logs = {}, {}
    for n in (1, 2):
        kwargs = dict(
            spec=states.StatesSpec(what, {**p, "eval_batch_size": 3}, "gsm8k", 8),
            model_card=str(bridge_cards[role]),
            train_file=str(bridge_world["gsm8k_train"]),
            eval_file=str(bridge_world["gsm8k_test"]),
            out_dir=str(tmp_path / f"{what}-{n}"),
        )
        with open(tmp_path / f"log-{n}", "w") as log:
            parallel.launch("ablate.bridge.states:compute", kwargs, n, n, log=log)
        out[n] = _files(tmp_path / f"{what}-{n}")
        logs[n] = (tmp_path / f"log-{n}").read_text()
    assert len(world.load_dataset(bridge_world["gsm8k_train"], "gsm8k")) == 16
    assert any(k.endswith(".npy") for k in out[1]) and any(k.endswith("index.json") for k in out[1])
    assert out[2] == out[1]
    summary = json.loads((tmp_path / f"{what}-2" / "summary.json").read_text())
    assert summary["processes"] == 2
    # each process ran its share of the batches, not all of them
    assert "process 0 of 2 extracted 3 of 6 batches" in logs[2]
    assert "process 1 of 2 extracted 3 of 6 batches" in logs[2]
    if what == "source":
        assert "process 0 of 2 extracted 2 of 3 batches" in logs[2]
        assert "process 1 of 2 extracted 1 of 3 batches" in logs[2]
    assert "process 1" not in logs[1]


def test_cached_frozen_states_give_the_live_loss(bridge_world, bridge_cards, tmp_path):
    """A few steps reading the source and KL-teacher caches have the live path's losses
    (float32, rel 1e-5; the KL term on from step 1)."""
    p = bridge_params.check(bridge_params.resolve(EXACT))
    assert p.kl_weight > 0
    caches = {}
    for what, role in (("source", "source"), ("teacher", "target")):
        summary = states.compute(
            # other batch shapes than the training's
            states.StatesSpec(what, {**p.as_dict(), "eval_batch_size": 3}, "gsm8k", p.eval_size),
            model_card=bridge_cards[role],
            train_file=bridge_world["gsm8k_train"],
            eval_file=bridge_world["gsm8k_test"],
            out_dir=tmp_path / what,
        )
        caches[what] = states.open_cache(tmp_path / what, what)
    items = world.load_dataset(bridge_world["gsm8k_train"], "gsm8k")
    assert summary["items"] == {"train": len(items)}  # the teacher's: train only
    assert summary["throughput"]["train"]["tokens_per_s"] > 0  # measured, for the planner
    live = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    cached = load_pair(
        bridge_cards["source"], bridge_cards["target"], "gsm8k", p, caches["source"],
        caches["teacher"],
    )  # fmt: skip
    assert not hasattr(cached.source, "base_model")  # the source's weights are not loaded
    h_live, m_live = live.source_states(items[:4])
    h_cached, m_cached = cached.source_states(items[:4])
    assert torch.equal(m_live, m_cached)
    assert torch.allclose(h_live * m_live[..., None], h_cached, rtol=1e-5, atol=1e-6)
    reads = []  # the KL term reads the teacher cache, not a target forward pass
    read = caches["teacher"].batch
    caches["teacher"].batch = lambda batch, device: reads.append(len(batch)) or read(batch, device)
    curves = []
    for pair in (live, cached):  # the pipeline's step: the loop's, on its own data order
        torch.manual_seed(p.seed)
        translator = tr.build(p, pair.source, pair.target).to(pair.device)
        trainer = recipe.translator_trainer(pair, translator, items, p, "cached")
        curve = []
        for _ in range(3):
            loop.step(trainer, loop.step_examples(trainer, trainer.state.step))
            last = trainer.spec.recipe.log_parts()
            curve.append((last["loss"], last["nll"], last["kl"]))
        curves.append(curve)
    assert reads == [p.batch_size] * 3
    # abs: the KL part is ~1e-3, and on a GPU the cache's other batch shapes move it by ~2e-8
    for a, b in zip(curves[0], curves[1], strict=True):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-7)


def test_length_batched_cache_reads_as_the_ordered_one(bridge_world, bridge_cards, tmp_path):
    """States batched by length (the GPU order) read back by id like the data's order."""
    p = bridge_params.check(bridge_params.resolve(EXACT))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    items = world.load_dataset(bridge_world["gsm8k_train"], "gsm8k")
    lengths = [len(pair.source_ids(i)) for i in items]
    assert len(set(lengths)) > 1
    states.write(pair.source_states, items, tmp_path / "plain", 3)
    index = states.write(pair.source_states, items, tmp_path / "sorted", 3, lengths)
    assert [lengths[[i["id"] for i in items].index(x)] for x in index["ids"]] == sorted(lengths)
    a = states.Reader([tmp_path / "plain"]).batch(items, "cpu")
    b = states.Reader([tmp_path / "sorted"]).batch(items, "cpu")
    assert torch.equal(a[1], b[1]) and torch.allclose(a[0], b[0], rtol=1e-5, atol=1e-6)
