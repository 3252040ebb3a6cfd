"""The fast head on a sharded model (2 processes, FSDP2, gloo on CPU): the decoder body and the head
run as one forward method of the root (sharding.gathered), so its loss, and the corpus-vocabulary
head loss (``loss_vocab: corpus``), equal the unsharded model's, and so do the head's and the
embeddings' gradients (reduce-scattered over the processes, all of which saw the same batch)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def compare(model_path: str, out: str) -> None:
    """In each process: the losses and gradients of the sharded and an unsharded copy of the
    model on one batch; process 0 writes the largest differences to ``out``."""
    import torch

    from ablate.core.execution import parallel
    from ablate.core.models.modeling import load_causal_lm
    from ablate.core.training import sharding
    from ablate.core.training.loss import head_loss_sum, loss_sum, vocab_head_loss

    model = load_causal_lm(model_path)
    reference = copy.deepcopy(model)
    sharded = sharding.shard(model, torch.float32)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=gen)
    labels = ids.clone()
    labels[:, :5] = -100  # the prompt: no loss there, as a finetune's
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    corpus = vocab_head_loss(ids.flatten().tolist())
    result = {}
    for name, head in (("full_vocab", head_loss_sum), ("corpus_vocab", corpus)):
        for m in (reference, sharded):
            m.zero_grad(set_to_none=True)
        ref, n_ref = loss_sum(reference, batch, head_loss=head)
        got, n_got = loss_sum(sharded, batch, head_loss=head)
        assert int(n_ref) == int(n_got)
        ref.backward()
        got.backward()
        grads = {}
        for (key, p), (_, q) in zip(
            reference.named_parameters(), sharded.named_parameters(), strict=True
        ):
            if p.grad is not None:
                grads[key] = float((q.grad.full_tensor() - p.grad).abs().max())
        result[name] = {
            "loss": abs(float(got) - float(ref)) / abs(float(ref)),
            "grad": max(grads.values()),
            "grads": len(grads),
        }
    if parallel.rank() == 0:
        Path(out).write_text(json.dumps(result))


@pytest.mark.slow
def test_fast_head_of_a_sharded_model_equals_the_unsharded(tiny_model_dir, tmp_path, monkeypatch):
    from ablate.core.execution import parallel

    path = [str(ROOT / "src"), str(ROOT / "tests" / "core")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "result.json"
    with (tmp_path / "log").open("w") as log:
        kwargs = {"model_path": str(tiny_model_dir), "out": str(out)}
        parallel.launch(f"{Path(__file__).stem}:compare", kwargs, nproc=2, threads=2, log=log)
    result = json.loads(out.read_text())
    print(result)
    for name in ("full_vocab", "corpus_vocab"):
        # fp32; the sharded backward averages the two processes' equal gradients
        assert result[name]["loss"] <= 1e-6, result
        assert result[name]["grad"] <= 1e-6, result
        assert result[name]["grads"] > 0, result
