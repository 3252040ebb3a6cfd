"""ablate.mask.training.gate: a finetune's leakage gate, through the finetune on the tiny model (the
probe's verdict given, its record read for the refusal's evidence, or the probe run itself): a
leaking policy refused unless allowed, a probe result for another policy not accepted."""

from __future__ import annotations

import json

import pytest
from helpers import FAST, no_leak

from ablate.core.training.params import TrainingConfigError
from ablate.mask import leakage
from ablate.mask.training.entries import FinetuneSpec, finetune
from ablate.mask.training.gate import LeakageGateError


def test_gate_refuses_leaking_policy_unless_allowed(tiny_model_dir, sft_file, tmp_path):
    leaking = {
        "policy": "prefill_bidir",
        "leaks": True,
        "loss_causal": 1.023,
        "loss_policy": 0.070,
        "ratio": 0.068,
        "threshold": 0.5,
        "n_examples": 4,
    }

    def train_with(probe_result, out="refused"):
        return finetune(
            FinetuneSpec.parse("prefill_bidir", FAST),
            model_path=tiny_model_dir,
            data=sft_file,
            out_dir=tmp_path / out,
            probe_result=probe_result,
        )

    with pytest.raises(LeakageGateError) as err:
        train_with(leaking)
    msg = str(err.value)
    # a given verdict is checked before the data and the model load: a refusal loads neither
    with pytest.raises(LeakageGateError):
        finetune(
            FinetuneSpec.parse("prefill_bidir", FAST),
            model_path=tmp_path / "no-model",
            data=tmp_path / "no-data.jsonl",
            out_dir=tmp_path / "refused",
            probe_result=leaking,
        )
    assert "prefill_bidir" in msg and "0.07" in msg and "1.023" in msg and "allow_leakage" in msg
    assert not (tmp_path / "refused" / "final").exists()
    # the pipeline hands a finetune the probe's verdict alone: the refusal still cites the
    # evidence, from the record the verdict names
    record = tmp_path / "leakage" / "prefill_bidir.json"
    record.parent.mkdir()
    record.write_text(json.dumps(leaking))
    with pytest.raises(LeakageGateError) as err:
        train_with(leakage.verdict(leaking, record))
    assert "0.07" in str(err.value) and "1.023" in str(err.value)
    # where the record was not shipped (a rented host gets the verdict alone), the line names it
    record.unlink()
    with pytest.raises(LeakageGateError, match=f"the probe's evidence is in {record}"):
        train_with(leakage.verdict(leaking, record))
    # a probe result for another policy is not accepted as evidence
    with pytest.raises(TrainingConfigError, match="probe result is for policy"):
        train_with(no_leak("causal"), out="x")
    # the seed's naive training, reproduced on purpose
    summary = finetune(
        FinetuneSpec.parse("prefill_bidir", {**FAST, "max_steps": 2, "eval_size": 0}, True),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=tmp_path / "allowed",
        probe_result=leaking,
    )
    assert summary["leakage_probe"]["leaks"] and summary["leakage_probe"]["allowed"]
    assert (tmp_path / "allowed" / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_gate_runs_the_probe_itself(tiny_model_dir, sft_file, tmp_path):
    """No probe result given: finetune probes the held-out pairs (ablate.mask.leakage) before step 1."""
    params = {**FAST, "max_steps": 1, "probe_size": 4}
    with pytest.raises(LeakageGateError, match="prefill_bidir.*later token changes"):
        finetune(
            FinetuneSpec.parse("prefill_bidir", params),
            model_path=tiny_model_dir,
            data=sft_file,
            out_dir=tmp_path / "refused",
        )
    summary = finetune(
        FinetuneSpec.parse("prefix_bidir", params),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=tmp_path / "ok",
    )
    probe = summary["leakage_probe"]
    assert (
        probe["policy"] == "prefix_bidir" and probe["leaks"] is False and probe["n_examples"] == 4
    )
    assert probe["future_dependent"] is False and probe["allowed"] is False
