"""ablate.mask.training.entries: the study's finetune and pretrain on the tiny model, end to end
(seconds): the summary and the final checkpoint they write, a data file without its column named
(the finetune's leakage gate: test_gate.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import FAST, no_leak, synthetic_rows, weights

from ablate.core.models.modeling import load_causal_lm
from ablate.core.outputs import checkpoint_integrity
from ablate.core.training.params import TrainingConfigError
from ablate.mask import sft_data
from ablate.mask.training.entries import FinetuneSpec, finetune, pretrain
from ablate.mask.training.params import resolve_params


@pytest.mark.parametrize(
    "policy,packed", [("causal", False), ("prefix_bidir", False), ("prefix_bidir", True)]
)
def test_finetune_tiny_model(tiny_model_dir, sft_file, tmp_path, policy, packed):
    out = tmp_path / policy
    spec = FinetuneSpec.parse(policy, {**FAST, "packing": packed, "packing_row_tokens": 256})
    summary = finetune(
        spec,
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=out,
        probe_result=no_leak(policy),
    )
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["steps_done"] == summary["steps_done"] == 6
    assert on_disk["stop"]["reason"] == "max_steps" and on_disk["policy"] == policy
    # the prepared pairs' token lengths (the planner's tokens per pair)
    lengths = on_disk["lengths"]
    assert lengths["n"] == on_disk["n_train"] and lengths["max_seq_len"] == FAST["max_seq_len"]
    assert 0 < lengths["prompt_mean"] < lengths["mean"] <= lengths["p90"] <= lengths["max"]
    assert lengths["max"] <= FAST["max_seq_len"]
    train = on_disk["curves"]["train"]
    assert [e["step"] for e in train] == list(range(1, 7))
    assert train[-1]["loss"] < train[0]["loss"] - 0.5  # it learns
    assert [e["step"] for e in on_disk["curves"]["eval"]] == [3, 6]
    assert (
        on_disk["throughput"]["train_tokens_per_s"] > 0
        and on_disk["throughput"]["train_steps_per_s"] > 0
    )
    assert on_disk["tokens_seen"] > 0 and on_disk["leakage_probe"]["policy"] == policy
    # the spec's fields are the slice it records (ablate train's: no variant, no stage)
    assert (
        on_disk["provenance"]["config"] == spec.config_slice() and on_disk["provenance"]["run_id"]
    )
    assert set(spec.config_slice()) == {"policy", "params", "allow_leakage"}
    assert on_disk["checkpoint"]["format"] == "save_pretrained"
    # final: safetensors + tokenizer + manifest, loadable by the eval stage's loader, trained weights
    final = out / "final"
    assert (final / "model.safetensors").exists() and (final / "tokenizer.json").exists()
    manifest = checkpoint_integrity.verify(final)
    assert manifest["format"] == "save_pretrained" and manifest["policy"] == policy
    before, after = weights(tiny_model_dir), weights(final)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not (out / "final.tmp").exists() and not (out / "checkpoints").exists()
    # where the job's seconds went: every phase, the steps a part of "train"
    ph = on_disk["phases"]
    for key in ("startup", "data", "load_model", "setup", "train", "train.steps",
                "save_final", "save_final.write", "other", "total"):  # fmt: skip
        assert ph[key] is not None and ph[key] >= 0, key
    assert 0 < ph["train.steps"] <= ph["train"] and ph["save_final.write"] <= ph["save_final"]
    assert ph["total"] >= ph["startup"] + ph["train"] + ph["save_final"]


def test_missing_column_is_named(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "hi", "response": "there"}) + "\n")
    with pytest.raises(sft_data.SFTDataError, match="lacks column.*output"):
        finetune(
            FinetuneSpec.parse("causal", FAST),
            model_path=tiny_model_dir,
            data=bad,
            out_dir=tmp_path / "o",
            probe_result=no_leak("causal"),
        )


def test_pretrain_tiny_model(tekken_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = synthetic_rows(60, seed=1)
    corpus.write_text(
        "".join(json.dumps({"text": sft_data.format_prompt(r) + r["output"]}) + "\n" for r in rows)
    )
    out = tmp_path / "pre"
    summary = pretrain(
        corpus=corpus,
        tokenizer_dir=tekken_dir,
        arch={"num_hidden_layers": 1},
        params=resolve_params(
            {
                "max_steps": 5,
                "batch_size": 4,
                "max_seq_len": 64,
                "eval_size": 2,
                "eval_steps": 5,
                "logging_steps": 1,
                "learning_rate": 3e-3,
            },
            "pretrain",
        ),
        out_dir=out,
    )
    assert (
        summary["kind"] == "pretrain"
        and summary["steps_done"] == 5
        and summary["policy"] == "causal"
    )
    assert summary["arch"]["num_hidden_layers"] == 1 and summary["n_train_blocks"] > 4
    train = summary["curves"]["train"]
    assert train[-1]["loss"] < train[0]["loss"] and math.isfinite(summary["final_eval_loss"])
    model = load_causal_lm(out / "final")
    assert model.config.num_hidden_layers == 1 and model.config.vocab_size == 131072
    assert (out / "final" / "tokenizer.json").exists()
    with pytest.raises(TrainingConfigError, match="lacks column 'text'"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({"body": "x"}) + "\n")
        pretrain(
            corpus=bad,
            tokenizer_dir=tekken_dir,
            arch={},
            params=resolve_params({}, "pretrain"),
            out_dir=tmp_path / "b",
        )
