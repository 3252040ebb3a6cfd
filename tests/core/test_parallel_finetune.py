"""A finetune across processes (ablate.core.execution.parallel's launcher, torchrun, gloo on CPU)
equals the one-process finetune: the same global batch (batch x processes x grad_accum), the same
logged losses and the same final weights, unpacked and packed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import FAST, no_leak, synthetic_rows, weights

from ablate.core.execution import parallel
from ablate.mask.training.entries import FinetuneSpec, finetune

ROOT = Path(__file__).resolve().parents[2]
#: float32 on CPU; the 2-process step sums the same per-token losses in another order (each
#: process its half, then an all-reduce), so losses agree to float rounding, not bit for bit
LOSS_RTOL = 1e-5
WEIGHT_RTOL, WEIGHT_ATOL = 1e-4, 1e-6
# grad_accum 4 over 2 processes: 2 micro-batches each; SGD so a step is linear in the gradient
PARAMS = {**FAST, "batch_size": 2, "grad_accum": 4, "optim": "sgd", "save_steps": 0, "max_steps": 3}


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.slow
def test_two_processes_train_like_one(tiny_model_dir, tmp_path, monkeypatch, packed):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows()))
    params = {**PARAMS, "packing": packed, "packing_row_tokens": 256}
    kwargs = dict(
        # a dataclass: the launcher carries it through its JSON and rebuilds it in each process
        spec=FinetuneSpec.parse("prefix_bidir", params),
        model_path=str(tiny_model_dir),
        data=str(data),
        probe_result=no_leak("prefix_bidir"),
    )
    one = finetune(**kwargs, out_dir=tmp_path / "one")
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    log = (tmp_path / "two.log").open("w")
    try:
        parallel.launch(
            "ablate.mask.training.entries:finetune",
            {**kwargs, "out_dir": str(tmp_path / "two")},
            nproc=2,
            threads=2,
            log=log,
            # as workflow/scripts/finetune.py: TensorBoard on (rank 0 alone has a writer)
            reporters=dict(
                call="ablate.core.reports.tracking:reporters",
                kwargs=dict(tracking={"tensorboard": True}, out_dir=str(tmp_path / "two")),
            ),
        )
    finally:
        log.close()
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["steps_done"] == one["steps_done"] == PARAMS["max_steps"]
    a, b = one["curves"]["train"], two["curves"]["train"]
    assert [e["step"] for e in a] == [e["step"] for e in b]
    for x, y in zip(a, b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=LOSS_RTOL), x["step"]
    assert two["final_eval_loss"] == pytest.approx(one["final_eval_loss"], rel=LOSS_RTOL)
    # the same global batch: every process saw half of each step's non-pad tokens
    assert two["tokens_seen"] == one["tokens_seen"]
    w1, w2 = weights(tmp_path / "one" / "final"), weights(tmp_path / "two" / "final")
    for k in w1:
        assert w2[k].allclose(w1[k], rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL), k
    assert (tmp_path / "two.log").read_text().count("done:") == 1  # rank 0 alone saves
    assert list((tmp_path / "two" / "tensorboard").glob("events.out.tfevents.*"))
