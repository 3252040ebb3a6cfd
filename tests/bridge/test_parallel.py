"""Data-parallel bridge jobs (ablate.bridge.parallel): the data split and its gathering back in
order, a term's count and a value's mean over the processes, with the process group faked (fast);
and under torchrun, on the micro model pair of bridge_fixtures (CPU; slow: torchrun starts two gloo
processes): two processes with half the batch each follow the one-process loss curve, evaluate each
item as one process does, and resume from their checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bridge_fixtures import EXACT

from ablate.bridge import parallel, world
from ablate.bridge import params as bridge_params
from ablate.bridge import translator as tr
from ablate.bridge.training import entries
from ablate.core.execution import parallel as core_parallel

ROOT = Path(__file__).resolve().parents[2]
#: float32 sums in another order (two half batches, then the gradient all-reduce)
LOSS_RTOL = 1e-4


@pytest.fixture
def processes(monkeypatch):
    """``set(rank, world)``: this process's place in a faked process group, whose object
    collectives hand out the rows each rank gave (``given``: rank -> rows)."""
    given: dict[int, list] = {}

    def set_place(r: int, w: int) -> None:
        monkeypatch.setattr(parallel, "rank", lambda: r)
        monkeypatch.setattr(parallel, "world_size", lambda: w)

    def all_gather_object(parts, rows):
        parts[:] = [given[r] for r in range(len(parts))]

    def gather_object(rows, parts, dst):
        if parts is not None:
            parts[:] = [given[r] for r in range(len(parts))]

    monkeypatch.setattr(torch.distributed, "all_gather_object", all_gather_object)
    monkeypatch.setattr(torch.distributed, "gather_object", gather_object)
    set_place.given = given
    return set_place


def test_shards_gather_back_in_the_original_order(processes):
    items = list(range(7))  # 7 items on 3 processes: shards of 3, 2 and 2
    assert parallel.shard(items) == items and parallel.gather(items) == items  # one process
    for r in range(3):
        processes(r, 3)
        processes.given[r] = parallel.shard(items)
    assert processes.given == {0: [0, 3, 6], 1: [1, 4], 2: [2, 5]}
    assert parallel.gather(processes.given[1]) == items  # on every process
    assert parallel.collect(processes.given[0]) == []  # rank 2 (the last set): nothing
    processes(0, 3)
    assert parallel.collect(processes.given[0]) == items  # process 0 alone


def test_a_count_is_summed_and_at_least_one_a_value_averaged(processes, monkeypatch):
    empty = torch.tensor(0.0, requires_grad=True)
    count = parallel.global_count(empty)  # no unit of this term anywhere
    assert count.item() == 1 and not count.requires_grad
    assert parallel.mean_values({"a": torch.tensor(3.0)}) == {"a": 3.0}
    assert parallel.mean_values({}) == {}
    processes(0, 2)
    monkeypatch.setattr(parallel, "sum_tensor", lambda t: t + 5.0)  # the other process holds 5
    assert parallel.global_count(torch.tensor(2.0)).item() == 7
    # the other process holds 5 of each: one reduction of both values
    assert parallel.mean_values({"a": torch.tensor(3.0), "b": torch.tensor(1.0)}) == {
        "a": 4.0,
        "b": 3.0,
    }


def _kwargs(world_files, cards, out, params):
    return dict(
        spec=bridge_params.RunSpec.parse("ddp", params, "gsm8k", identity={"entry": "ddp"}),
        source_card=str(cards["source"]),
        target_card=str(cards["target"]),
        train_file=str(world_files["gsm8k_train"]),
        eval_file=str(world_files["gsm8k_test"]),
        out_dir=str(out),
    )


#: the 2-process runs' parameters: batch 2 a process, evaluated and saved every 2 steps
TWO = {**EXACT, "batch_size": 2, "eval_every": 2}


def _torchrun(
    world_files, cards, out: Path, call="ablate.bridge.training.entries:train_entry", **extra
):
    """``call`` (a bridge training entry) in 2 processes with :data:`TWO`, through the launcher's
    own torchrun command, writing to ``out``: the finished process (its output captured)."""
    path = os.pathsep.join(
        filter(None, [str(ROOT / "src"), str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
    )
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    spec = out.parent / f"{out.name}.json"
    kwargs = {**_kwargs(world_files, cards, out, TWO), **extra}
    kwargs = core_parallel.encode_kwargs(kwargs)  # as launch writes them
    spec.write_text(json.dumps({"call": call, "kwargs": kwargs}))
    cmd = core_parallel.command(spec, 2)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def two_processes(bridge_world, bridge_cards, tmp_path_factory):
    """An uninterrupted 2-process run of :data:`TWO` (its folder, its stdout), made once: the
    loss-curve test's run and the resume test's reference."""
    out = tmp_path_factory.mktemp("two_processes") / "two"
    r = _torchrun(bridge_world, bridge_cards, out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r.stdout


@pytest.mark.slow  # torchrun, 2 processes
@pytest.mark.xdist_group("bridge_two_processes")  # one worker: the fixture's run is made once
def test_two_processes_follow_the_one_process_loss_curve(
    bridge_world, bridge_cards, two_processes, tmp_path
):
    """torchrun, 2 gloo processes x batch 2 == 1 process x batch 4 (the same global batch) with
    InfoNCE in groups of 2 (the processes' batches): the same loss at more rows per process."""
    one_params = {**TWO, "batch_size": 4, "infonce_group": 2}
    one = entries.train_entry(**_kwargs(bridge_world, bridge_cards, tmp_path / "one", one_params))
    two_dir, stdout = two_processes
    two = json.loads((two_dir / "summary.json").read_text())
    assert two["world_size"] == 2 == two["provenance"]["world_size"]
    assert one["world_size"] == 1 and two["global_batch"] == one["global_batch"] == 4
    assert [x["step"] for x in two["losses"]] == [x["step"] for x in one["losses"]] == [1, 2, 3, 4]
    for a, b in zip(one["losses"], two["losses"], strict=True):
        for key in ("loss", "nll", "kl", "infonce", "align"):
            assert b[key] == pytest.approx(a[key], rel=LOSS_RTOL), (a["step"], key)
    # the weights moved the same way: the saved translators agree
    t1 = tr.load(tmp_path / "one" / "translator").state_dict()
    t2 = tr.load(two_dir / "translator").state_dict()
    for k in t1:
        assert torch.allclose(t1[k], t2[k], rtol=1e-4, atol=1e-6), k
    assert stdout.count("done: peak") == 1  # rank 0 alone reports (and writes)


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


@pytest.mark.slow  # torchrun, 2 processes
@pytest.mark.xdist_group("bridge_two_processes")
def test_two_processes_resume_from_their_checkpoint(
    bridge_world, bridge_cards, two_processes, tmp_path
):
    """torchrun, 2 processes: killed in step 3 after the checkpoint of step 2 (one RNG file per
    process), the rerun resumes at step 2 in both and ends with the uninterrupted run's losses and
    translator."""
    from ablate.core.outputs import checkpoint_integrity
    from ablate.core.training import saving

    ref_dir, _ = two_processes
    run_dir = tmp_path / "run"
    r = _torchrun(
        bridge_world, bridge_cards, run_dir, "ddp_killed:train_entry_killed_in", kill_in=3
    )
    assert r.returncode != 0
    (ckpt,) = checkpoint_integrity.complete_checkpoints(
        run_dir / checkpoint_integrity.CHECKPOINTS_DIR
    )
    assert ckpt.name == "checkpoint-2"
    names = {saving.WEIGHTS, saving.EVALUATION, "rng_state_0.pth", "rng_state_1.pth"}
    assert {p.name for p in ckpt.iterdir()} >= names
    r = _torchrun(bridge_world, bridge_cards, run_dir)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("resuming from") == 1 and "(step 2)" in r.stdout  # rank 0 says it
    ref = json.loads((ref_dir / "summary.json").read_text())
    run = json.loads((run_dir / "summary.json").read_text())
    assert run["resumed_from_step"] == 2 and ref["resumed_from_step"] is None
    assert run["curve"] == ref["curve"]
    for a, b in zip(ref["losses"], run["losses"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), a["step"]
    t1 = tr.load(ref_dir / "translator").state_dict()
    t2 = tr.load(run_dir / "translator").state_dict()
    for k in t1:
        torch.testing.assert_close(t2[k], t1[k], rtol=1e-5, atol=1e-6)
    assert not (run_dir / checkpoint_integrity.CHECKPOINTS_DIR).exists()
