"""Bridge study at scale: data-parallel training under torchrun, and the source-state cache.

Both on the micro model pair of bridge_fixtures (CPU, seconds): two gloo processes with half the
batch each follow the one-process loss curve (slow: torchrun starts two processes); cached source
states give the live path's loss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bridge_fixtures import MICRO_PARAMS

from ablate.bridge import params as bridge_params
from ablate.bridge import states, train, world
from ablate.bridge import translator as tr
from ablate.bridge.pair import load_pair
from ablate.core.execution import parallel as core_parallel
from ablate.core.training import loop

ROOT = Path(__file__).resolve().parents[2]
#: Deterministic steps: no dropout (each process draws its own masks); a loss logged every step.
#: InfoNCE on: its negatives are each process's batch, the one process's in groups of that size.
EXACT = {**MICRO_PARAMS, "dropout": 0.0, "kl_after_warmup": False,
         "log_every": 1, "steps": 4, "early_stopping": False, "eval_every": 4,
         "model_dtype": "float32"}  # fmt: skip
#: float32 sums in another order (two half batches, then the gradient all-reduce)
LOSS_RTOL = 1e-4


def _kwargs(world_files, cards, out, params):
    return dict(
        spec=bridge_params.RunSpec.parse("ddp", params, "gsm8k", identity={"entry": "ddp"}),
        source_card=str(cards["source"]),
        target_card=str(cards["target"]),
        train_file=str(world_files["gsm8k_train"]),
        eval_file=str(world_files["gsm8k_test"]),
        out_dir=str(out),
    )


@pytest.mark.slow  # torchrun, 2 processes
def test_two_processes_follow_the_one_process_loss_curve(bridge_world, bridge_cards, tmp_path):
    """torchrun, 2 gloo processes x batch 2 == 1 process x batch 4 (the same global batch) with
    InfoNCE in groups of 2 (the processes' batches): the same loss at more rows per process."""
    one_params = {**EXACT, "batch_size": 4, "infonce_group": 2}
    one = train.train_entry(**_kwargs(bridge_world, bridge_cards, tmp_path / "one", one_params))
    spec = tmp_path / "spec.json"
    two_kwargs = _kwargs(bridge_world, bridge_cards, tmp_path / "two", {**EXACT, "batch_size": 2})
    two_kwargs = core_parallel.encode_kwargs(two_kwargs)  # as launch writes them
    spec.write_text(json.dumps({"call": "ablate.bridge.train:train_entry", "kwargs": two_kwargs}))
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    cmd = core_parallel.command(spec, 2)  # the launcher's own torchrun command
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["world_size"] == 2 == two["provenance"]["world_size"]
    assert one["world_size"] == 1 and two["global_batch"] == one["global_batch"] == 4
    assert [x["step"] for x in two["losses"]] == [x["step"] for x in one["losses"]] == [1, 2, 3, 4]
    for a, b in zip(one["losses"], two["losses"], strict=True):
        for key in ("loss", "nll", "kl", "infonce", "align"):
            assert b[key] == pytest.approx(a[key], rel=LOSS_RTOL), (a["step"], key)
    # the weights moved the same way: the saved translators agree
    t1 = tr.load(tmp_path / "one" / "translator").state_dict()
    t2 = tr.load(tmp_path / "two" / "translator").state_dict()
    for k in t1:
        assert torch.allclose(t1[k], t2[k], rtol=1e-4, atol=1e-6), k
    assert r.stdout.count("done: peak") == 1  # rank 0 alone reports (and writes)


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
        trainer = train.translator_trainer(pair, translator, items, p, "cached")
        curve = []
        for _ in range(3):
            loop.step(trainer, loop.step_examples(trainer, trainer.state.step))
            last = trainer.spec.hooks.compute.log_parts()
            curve.append((last["loss"], last["nll"], last["kl"]))
        curves.append(curve)
    assert reads == [p.batch_size] * 3
    # abs: the KL part is ~1e-3, and on a GPU the cache's other batch shapes move it by ~2e-8
    for a, b in zip(curves[0], curves[1], strict=True):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-7)


def test_the_global_batch_is_part_of_a_run_identity():
    """config/latentwire.yaml's 40 rows per process in InfoNCE groups of 10: gpu 0 and 1 (one
    process, global 40) are the seed's 4 x 10 run; gpu 2 and 4 (global 80, 160) other runs,
    spelled as 8 and 16 processes of 10. The states keys ignore it."""
    import copy

    from ablate.bridge import grid
    from ablate.core import planner

    bridge = planner.load_config(ROOT / "config" / "latentwire.yaml")["bridge"]
    ids, keys = {}, {}
    for gpus in (0, 1, 2, 4):
        b = copy.deepcopy(bridge)
        b["resources"]["train"]["gpu"] = gpus
        study = grid.resolve(b)
        ids[gpus] = study.entries["1a"].run_id
        keys[gpus] = sorted(study.states)
        assert study.entries["1a"].identity["processes"] == 4 * max(1, gpus)
        assert study.entries["1a"].identity["params"]["batch_size"] == 10
    assert ids[0] == ids[1] and len({ids[1], ids[2], ids[4]}) == 3
    assert keys[0] == keys[1] == keys[2] == keys[4]


EVAL_SCRIPT = """
import json, sys, torch
from ablate.bridge import world
from ablate.bridge import params as bridge_params
from ablate.bridge.parallel import gather, shard
from ablate.core.execution import parallel
from ablate.bridge import translator as tr
from ablate.bridge.pair import load_pair
args = json.loads(open(sys.argv[1]).read())
parallel.init()
p = bridge_params.check(bridge_params.resolve(args["params"]))
pair = load_pair(args["source"], args["target"], "gsm8k", p)
torch.manual_seed(0)
translator = tr.build(p, pair.source, pair.target).eval()
items = world.load_dataset(args["eval_file"], "gsm8k")
rows = gather(pair.evaluate_latent(translator, shard(items)))
if parallel.rank() == 0:
    open(args["out"], "w").write(json.dumps(rows))
parallel.close()
"""


@pytest.mark.slow  # torchrun, 2 processes
def test_two_processes_evaluate_each_item_as_one_process(bridge_world, bridge_cards, tmp_path):
    """The bridged evaluation under data parallelism (each rank decodes its shard through the
    generation engine, gathered in order): per-item rows equal to one process's, hygiene on."""
    params = {**EXACT, "max_new_tokens": 16, "eval_batch_size": 3}
    args = dict(source=str(bridge_cards["source"]), target=str(bridge_cards["target"]),
                eval_file=str(bridge_world["gsm8k_test"]), params=params)  # fmt: skip
    script = tmp_path / "evaluate.py"
    script.write_text(EVAL_SCRIPT)
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    out = {}
    for n in (1, 2):
        spec = tmp_path / f"args{n}.json"
        spec.write_text(json.dumps({**args, "out": str(tmp_path / f"rows{n}.json")}))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               str(n), str(script), str(spec)]  # fmt: skip
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        out[n] = json.loads((tmp_path / f"rows{n}.json").read_text())
    items = world.load_dataset(bridge_world["gsm8k_test"], "gsm8k")
    assert [r["id"] for r in out[2]] == [i["id"] for i in items]
    assert out[2] == out[1]


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


@pytest.mark.slow  # torchrun, 2 processes
def test_two_processes_resume_from_their_checkpoint(bridge_world, bridge_cards, tmp_path):
    """torchrun, 2 processes: killed in step 3 after the checkpoint of step 2 (one RNG file per
    process), the rerun resumes at step 2 in both and ends with the uninterrupted run's losses and
    translator."""
    from ablate.core.outputs import checkpoint_integrity
    from ablate.core.training import saving

    params = {**EXACT, "batch_size": 2, "eval_every": 2}
    path = os.pathsep.join(
        filter(None, [str(ROOT / "src"), str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
    )
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}

    def torchrun(out, call="ablate.bridge.train:train_entry", **extra):
        spec = tmp_path / f"{out}.json"
        kwargs = {**_kwargs(bridge_world, bridge_cards, tmp_path / out, params), **extra}
        kwargs = core_parallel.encode_kwargs(kwargs)  # as launch writes them
        spec.write_text(json.dumps({"call": call, "kwargs": kwargs}))
        cmd = core_parallel.command(spec, 2)
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)

    r = torchrun("ref")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = torchrun("run", call="ddp_killed:train_entry_killed_in", kill_in=3)
    assert r.returncode != 0
    (ckpt,) = checkpoint_integrity.complete_checkpoints(
        tmp_path / "run" / checkpoint_integrity.CHECKPOINTS_DIR
    )
    assert ckpt.name == "checkpoint-2"
    names = {saving.WEIGHTS, saving.EVALUATION, "rng_state_0.pth", "rng_state_1.pth"}
    assert {p.name for p in ckpt.iterdir()} >= names
    r = torchrun("run")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("resuming from") == 1 and "(step 2)" in r.stdout  # rank 0 says it
    ref = json.loads((tmp_path / "ref" / "summary.json").read_text())
    run = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert run["resumed_from_step"] == 2 and ref["resumed_from_step"] is None
    assert run["curve"] == ref["curve"]
    for a, b in zip(ref["losses"], run["losses"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), a["step"]
    t1 = tr.load(tmp_path / "ref" / "translator").state_dict()
    t2 = tr.load(tmp_path / "run" / "translator").state_dict()
    for k in t1:
        torch.testing.assert_close(t2[k], t1[k], rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "run" / checkpoint_integrity.CHECKPOINTS_DIR).exists()
