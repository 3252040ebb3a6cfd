"""A sharded run's Trainer checkpoints resume exactly: 2 processes (FSDP2, gloo on CPU), Adafactor
with a decaying learning rate, a checkpoint every 2 steps; losing everything after checkpoint-2
(as a run killed there) and rerunning resumes from it and gives the uninterrupted run's loss at
every step and its final weights, bit for bit (the weights, the optimizer's row statistics on
each process, the scheduler and the RNG states are all in the checkpoint)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from test_training import FAST, no_leak, synthetic_rows, weights

from ablate.core import checkpoint, parallel
from ablate.core.training import sharding
from ablate.mask.training.run import FinetuneSpec

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {
    **FAST,
    "batch_size": 2,
    "grad_accum": 2,  # one micro-batch per process
    "optim": "adafactor",
    "learning_rate": 1e-3,
    "lr_scheduler": "linear",  # the scheduler's position must come back too
    "max_steps": 4,
    "save_steps": 2,
    "eval_size": 0,
    "eval_steps": 0,
    "keep_checkpoints": True,
}


def _launch(kwargs: dict, out: Path, log: Path) -> dict:
    with log.open("w") as f:
        parallel.launch(
            "ablate.mask.training.run:finetune",
            {**kwargs, "out_dir": str(out)},
            nproc=2,
            threads=2,
            log=f,
        )
    return json.loads((out / "summary.json").read_text())


def test_sharded_run_resumes_exactly(tiny_model_dir, tmp_path, monkeypatch):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows()))
    kwargs = dict(
        spec=FinetuneSpec.parse("prefix_bidir", PARAMS),
        model_path=str(tiny_model_dir),
        data=str(data),
        probe_result=no_leak("prefix_bidir"),
    )
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    out = tmp_path / "run"
    first = _launch(kwargs, out, tmp_path / "first.log")
    ckpt2 = out / checkpoint.CHECKPOINTS_DIR / "checkpoint-2"
    marker = json.loads((ckpt2 / checkpoint.CHECKPOINT_MARKER).read_text())
    assert marker["format"] == checkpoint.FORMAT_SHARDED
    assert (ckpt2 / sharding.SHARDS_DIR / ".metadata").is_file()
    assert {p.name for p in ckpt2.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    reference = weights(out / "final")

    # as if killed after checkpoint-2: the later checkpoint, the final weights, the summary lost
    shutil.rmtree(out / checkpoint.CHECKPOINTS_DIR / "checkpoint-4")
    shutil.rmtree(out / "final")
    (out / "summary.json").unlink()
    second = _launch(kwargs, out, tmp_path / "second.log")
    assert second["resumed_from_step"] == 2
    assert second["steps_done"] == first["steps_done"] == PARAMS["max_steps"]
    assert [(e["step"], e["loss"], e["grad_norm"]) for e in second["curves"]["train"]] == [
        (e["step"], e["loss"], e["grad_norm"]) for e in first["curves"]["train"]
    ]
    resumed = weights(out / "final")
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
