"""The leakage probe on a tiny Ministral-3 trained in the test (small vocab, synthetic pairs).

Trained causally, the probe must flag prefill_bidir (its predictions read later tokens) and pass
prefix_bidir; after ~200 steps of prefill_bidir training the loss ratio itself collapses
below the threshold (the label leak the seed study measured as 1.023 vs 0.070).
"""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch

from ablate.core.training.pretraining import random_model
from ablate.mask import leakage, masks
from ablate.mask.sft_data import TokenizedPair
from ablate.mask.tiny import tiny_ministral3_config

VOCAB = 64


def synthetic_pairs(n: int, seed: int) -> list[TokenizedPair]:
    """BOS, marker, 4-10 prompt words, separator, 6 random response words, EOS."""
    r = random.Random(seed)
    pairs = []
    for _ in range(n):
        prompt = [1, 3] + [r.randrange(8, VOCAB) for _ in range(r.randint(4, 10))] + [4]
        response = [r.randrange(8, VOCAB) for _ in range(6)] + [2]
        pairs.append(TokenizedPair(prompt + response, len(prompt)))
    return pairs


def train(model, pairs, policy: str, steps: int, seed: int) -> None:
    r = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        ids, mask, labels, lengths = leakage._batch(r.sample(pairs, 32), "cpu")
        out = model(**masks.policy_forward_kwargs(model, ids, mask, lengths, policy), labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    # one xdist worker: `causal_model`'s 120 training steps are made once, not on both workers
    pytest.mark.xdist_group("mask:leakage"),
]


@pytest.fixture(scope="module")
def data():
    return synthetic_pairs(1000, seed=0), synthetic_pairs(48, seed=1)


@pytest.fixture(scope="module")
def causal_model(data):
    torch.manual_seed(0)
    model = random_model(tiny_ministral3_config(vocab_size=VOCAB), seed=0)
    before = leakage.probe(model, data[1], "causal")["loss_causal"]
    train(model, data[0], "causal", steps=120, seed=0)
    after = leakage.probe(model, data[1], "causal")["loss_causal"]
    assert after < before - 0.4, f"causal training did not learn: {before:.3f} -> {after:.3f}"
    return model


def test_causal_ratio_is_one(causal_model, data):
    res = leakage.probe(causal_model, data[1], "causal")
    assert res["ratio"] == 1.0
    assert res["leaks"] is False and res["future_dependent"] is False
    assert res["future_sensitivity"] == 0.0
    assert res["n_examples"] == 48
    assert res["n_response_tokens"] == 48 * 7
    assert set(res) >= {
        "policy",
        "loss_causal",
        "loss_policy",
        "ratio",
        "threshold",
        "leaks",
        "n_examples",
        "n_response_tokens",
    }


def test_prefill_bidir_flagged_prefix_bidir_not(causal_model, data):
    bidir = leakage.probe(causal_model, data[1], "prefill_bidir", batch_size=16)
    prefix = leakage.probe(causal_model, data[1], "prefix_bidir", batch_size=16)
    assert bidir["leaks"] and bidir["future_dependent"], bidir
    assert bidir["future_sensitivity"] > 100 * bidir["dependence_tol"], bidir
    assert not prefix["leaks"], prefix
    assert prefix["future_dependent"] is False and prefix["future_sensitivity"] == 0.0
    assert prefix["ratio"] >= leakage.DEFAULT_THRESHOLD
    # The prompt is seen differently under both policies: their losses are not the causal one.
    assert bidir["loss_policy"] != bidir["loss_causal"]
    assert prefix["loss_policy"] != prefix["loss_causal"]


def test_prefix_split_backend_gives_same_probe(causal_model, data):
    ref = leakage.probe(causal_model, data[1], "prefix_bidir")
    fast = copy.deepcopy(causal_model)
    fast.set_attn_implementation(masks.PREFIX_SDPA)
    res = leakage.probe(fast, data[1], "prefix_bidir")
    assert res["loss_policy"] == pytest.approx(ref["loss_policy"], abs=1e-5)
    assert res["future_dependent"] is False and not res["leaks"]


def test_loss_ratio_collapses_after_prefill_bidir_training(causal_model, data):
    leaked = copy.deepcopy(causal_model)
    train(leaked, data[0], "prefill_bidir", steps=200, seed=1)
    res = leakage.probe(leaked, data[1], "prefill_bidir")
    assert res["ratio"] < leakage.DEFAULT_THRESHOLD, res
    assert res["leaks_by_loss"] and res["leaks"]
    # A stricter-than-measured threshold no longer flags it by loss (the threshold is live).
    loose = leakage.probe(leaked, data[1], "prefill_bidir", threshold=res["ratio"] / 2)
    assert not loose["leaks_by_loss"] and loose["leaks"]  # still future-dependent


def test_probe_rejects_bad_input(causal_model):
    with pytest.raises(masks.UnknownPolicyError, match="bidirectional"):
        leakage.probe(causal_model, synthetic_pairs(2, 0), "bidirectional")
    with pytest.raises(leakage.LeakageProbeError, match="pair 0"):
        leakage.probe(causal_model, [TokenizedPair([1, 5, 6], 3)], "causal")
    with pytest.raises(leakage.LeakageProbeError, match="at least one"):
        leakage.probe(causal_model, [], "causal")


def test_cli_writes_json_with_provenance(tmp_path, tiny_model_dir):
    rows = [
        {"instruction": f"Name a colour number {i}.", "input": "", "output": "Blue is a colour."}
        for i in range(5)
    ]
    data_file = tmp_path / "sft.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "probe" / "prefill_bidir.json"
    rc = leakage.main(
        [
            "--model",
            str(tiny_model_dir),
            "--data",
            str(data_file),
            "--policy",
            "prefill_bidir",
            "--n",
            "4",
            "--threshold",
            "0.3",
            "--out",
            str(out),
            "--batch-size",
            "2",
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["policy"] == "prefill_bidir" and res["n_examples"] == 4
    assert res["threshold"] == 0.3
    assert res["leaks"] is True  # random weights: future dependence, not the loss ratio
    prov = res["provenance"]
    # the spec's config keys, named as the config's mask.leakage names them
    assert prov["config"] == {
        "n_pairs": 4,
        "max_seq_len": 1024,
        "batch_size": 2,
        "dtype": "float32",
        "threshold": 0.3,
    }
    assert set(prov["inputs"]) == {"data", "model"}
    assert 0 < res["phases"]["probe"] and 0 < res["phases"]["load_model"] < res["phases"]["total"]


def test_a_finetune_reads_the_verdict_so_other_evidence_keeps_its_key(tmp_path):
    """A probe of other n_pairs with the same verdict leaves the finetune's input, and so its
    run-cache key, as it was (restored, not retrained to the same weights); another verdict
    changes it."""
    from ablate.core.outputs import io
    from ablate.core.reruns import runcache

    record = tmp_path / "leakage" / "prefix_bidir.json"
    first = {"policy": "prefix_bidir", "leaks": False, "loss_causal": 1.2, "n_examples": 4}
    other_evidence = {**first, "loss_causal": 1.3, "n_examples": 8}
    leaking = {**first, "leaks": True}
    fingerprints = []
    for i, result in enumerate((first, other_evidence, leaking)):
        out = tmp_path / f"v{i}" / "prefix_bidir.verdict.json"
        io.write_json(out, leakage.verdict(result, record))
        fingerprints.append(runcache.input_fingerprint(out))
    assert json.loads(out.read_text()) == {
        "policy": "prefix_bidir",
        "leaks": True,
        "record": str(record),
    }
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]
