"""Training under a mask policy, whole runs through the study's finetune and pretrain for what
spans the core's training modules: resume (inside a log window, bf16 master weights, after a
SIGKILL), the save fallback, a non-finite loss, the corpus vocabulary, the split attention backend
in the loss, one model dtype rule with the bridge (each module alone: tests/core/training/, the
study's entries, CLI, params and hooks: tests/mask/training/)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import safetensors.torch
import torch
from helpers import FAST, causal_finetune, no_leak, synthetic_rows, weights
from references import policy_loss_sum

from ablate.core.models.modeling import load_causal_lm
from ablate.core.outputs import checkpoint_integrity
from ablate.core.training.data import PolicyCollator
from ablate.mask import sft_data
from ablate.mask.training.entries import FinetuneSpec, finetune, pretrain
from ablate.mask.training.params import resolve_params

torch.set_num_threads(2)


# ---------------------------------------------------------------- the split backend in the loss


def test_prefix_split_attention_equals_sdpa_in_training_loss(tiny_model_dir, tokenizer):
    """The split-sdpa backend (masks.PREFIX_SDPA) through the fast head: same loss and gradients."""
    from ablate.mask import masks

    pairs = sft_data.tokenize_rows(tokenizer, synthetic_rows(3), 64)
    batch = PolicyCollator(tokenizer.pad_token_id)(
        [{"input_ids": p.input_ids, "prompt_length": p.prompt_length} for p in pairs]
    )
    results = []
    for attn in ("sdpa", masks.PREFIX_SDPA):
        model = load_causal_lm(tiny_model_dir, attn_implementation=attn)
        loss, n = policy_loss_sum(model, batch, "prefix_bidir")
        (loss / n).backward()
        results.append((loss.detach(), model.model.layers[0].self_attn.q_proj.weight.grad))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- master weights end to end


def test_a_resume_inside_a_logging_window_logs_the_whole_window(tiny_model_dir, sft_file, tmp_path):
    """A checkpoint between two logs (step 3 of a log every 4 steps): the rerun's log at step 4
    is the mean of steps 2-4, as the uninterrupted run's; it was the mean of step 4 alone (the
    steps before the checkpoint were lost with the process)."""
    params = {**FAST, "max_steps": 4, "logging_steps": 4, "save_steps": 3, "eval_size": 0,
              "keep_checkpoints": True}  # fmt: skip
    out = tmp_path / "run"

    def run():
        return causal_finetune(params, tiny_model_dir, sft_file, out)

    whole = run()
    saved = checkpoint_integrity.complete_checkpoints(out / "checkpoints")
    assert [checkpoint_integrity.step_of(c) for c in saved] == [3]
    state = json.loads((saved[0] / "loop_state.json").read_text())
    assert len(state["unlogged_losses"]) == 2  # steps 2-3 (the loop logs step 1), not logged yet
    import shutil

    shutil.rmtree(out / "final")  # as if killed after saving step 3
    resumed = run()
    assert resumed["resumed_from_step"] == 3
    logged = [(e["step"], e["loss"]) for e in resumed["curves"]["train"]]
    assert logged == [(e["step"], e["loss"]) for e in whole["curves"]["train"]]
    assert [step for step, _ in logged] == [1, 4]


@pytest.mark.slow
def test_finetune_bf16_master_weights_resumes_exactly(tiny_model_dir, sft_file, tmp_path):
    """bf16 weights + fp32 masters (the GPU default) on CPU, and an in-process resume from step 2."""
    params = {
        **FAST,
        "max_steps": 4,
        "save_steps": 2,
        "eval_size": 0,
        "bf16": True,
        "grad_accum": 2,
        "batch_size": 2,
        "keep_checkpoints": True,
    }
    out = tmp_path / "bf16"
    s1 = finetune(
        FinetuneSpec.parse("prefix_bidir", params),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=out,
        probe_result=no_leak("prefix_bidir"),
    )
    assert s1["checkpoint"]["dtype"] == "bfloat16" and s1["params"]["master_weights"] == "auto"
    opt_state = torch.load(out / "checkpoints" / "checkpoint-2" / "optimizer.pt", weights_only=True)
    assert opt_state["master"][0].dtype == torch.float32
    from safetensors.torch import load_file

    assert all(
        v.dtype == torch.bfloat16 for v in load_file(out / "final" / "model.safetensors").values()
    )
    first = weights(out / "final")
    # rerun after losing step 4 (as if killed after saving step 2): same result
    import shutil

    shutil.rmtree(out / "checkpoints" / "checkpoint-4")
    shutil.rmtree(out / "final")
    s2 = finetune(
        FinetuneSpec.parse("prefix_bidir", params),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=out,
        probe_result=no_leak("prefix_bidir"),
    )
    assert s2["resumed_from_step"] == 2
    assert [e["loss"] for e in s2["curves"]["train"]] == [e["loss"] for e in s1["curves"]["train"]]
    second = weights(out / "final")
    assert all(torch.equal(first[k], second[k]) for k in first)


# ---------------------------------------------------------------- one model dtype rule


def test_one_model_dtype_rule_for_trained_and_frozen_weights(monkeypatch):
    """``auto`` means one thing for a finetune's weights and the bridge's frozen pair: bfloat16
    where bf16 runs. A GPU without bf16 kept the bridge's frozen pair in bfloat16 before."""
    from ablate.bridge import params as bridge_params
    from ablate.bridge.pair import model_dtype
    from ablate.core.training.params import model_dtype as train_dtype

    def pair_dtype(name: str) -> str:  # the bridge pair's dtype under params of model_dtype name
        return model_dtype(bridge_params.check(bridge_params.resolve({"model_dtype": name})))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert train_dtype(resolve_params({}, "finetune")) == torch.float32
    assert pair_dtype("auto") == "float32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert train_dtype(resolve_params({}, "finetune")) == torch.bfloat16
    assert pair_dtype("auto") == "bfloat16"
    # several processes: the same rule (sharded masters keep bf16 weights; sharded weights
    # upcast their fp32 shards, the masters, themselves)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert train_dtype(resolve_params({}, "finetune")) == torch.bfloat16
    assert pair_dtype("auto") == "bfloat16"
    assert pair_dtype("float32") == "float32"


# ---------------------------------------------------------------- saving


def test_save_pretrained_failure_falls_back(tiny_model_dir, sft_file, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    def broken(self, *a, **kw):
        raise RuntimeError("conversion error (simulated)")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", broken)
    out = tmp_path / "fb"
    summary = finetune(
        FinetuneSpec.parse("causal", {**FAST, "max_steps": 2, "save_steps": 1, "eval_size": 0}),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=out,
        probe_result=no_leak("causal"),
    )
    monkeypatch.undo()
    assert summary["checkpoint"]["format"] == "state_dict_fallback"
    assert checkpoint_integrity.verify(out / "final")["format"] == "state_dict_fallback"
    model = load_causal_lm(out / "final")  # loads (and its manifest verifies) like any checkpoint
    assert (
        model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    )  # still tied
    assert any(
        not torch.equal(v, weights(tiny_model_dir)[k]) for k, v in model.state_dict().items()
    )


def test_nonfinite_loss_keeps_last_good_checkpoint(tiny_model_dir, sft_file, tmp_path, monkeypatch):
    from ablate.core.training import recipe

    real, calls = recipe.loss_sum, []

    def poisoned(model, batch, *args, **kw):
        total, n = real(model, batch, *args, **kw)
        calls.append(model.training)  # one training forward per step here (batch 4, no eval)
        return (total * float("nan") if len(calls) >= 5 and model.training else total), n

    monkeypatch.setattr(recipe, "loss_sum", poisoned)
    out = tmp_path / "nan"
    summary = finetune(
        FinetuneSpec.parse(
            "causal",
            {**FAST, "max_steps": 8, "save_steps": 2, "eval_size": 0, "keep_checkpoints": True},
        ),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=out,
        probe_result=no_leak("causal"),
    )
    assert summary["stop"]["reason"] == "nonfinite" and summary["stop"]["step"] == 5
    assert summary["stop"]["detail"]["restored_from_step"] == 4
    assert not (out / "checkpoints" / "checkpoint-5").exists()  # the poisoned step was never saved
    final = weights(out / "final")
    good = safetensors.torch.load_file(out / "checkpoints" / "checkpoint-4" / "model.safetensors")
    assert good and all(torch.equal(final[k], good[k]) for k in good)
    assert all(torch.isfinite(v).all() for v in final.values())


# ---------------------------------------------------------------- resume after SIGKILL


def _cli(out, sft_file, model_dir, params):
    return [
        sys.executable,
        "-m",
        "ablate.cli",
        "train",
        "finetune",
        "--model",
        str(model_dir),
        "--data",
        str(sft_file),
        "--policy",
        "prefix_bidir",
        "--out",
        str(out),
        "--params",
        json.dumps(params),
        "--probe-result",
        str(out.parent / "probe.json"),
        "--threads",
        # this process's count (one under `-n 2`): the killed run's first steps then reduce in
        # the order the reference's do (with 2 against 1, a weight differed by 1.6e-5 on an AMD
        # EPYC with AVX-512)
        str(torch.get_num_threads()),
    ]


@pytest.mark.slow
def test_resume_after_sigkill(tiny_model_dir, sft_file, tmp_path, capsys):
    params = {
        **FAST,
        "max_steps": 8,
        "batch_size": 2,
        "save_steps": 2,
        "eval_steps": 4,
        "keep_checkpoints": True,
    }
    (tmp_path / "probe.json").write_text(json.dumps(no_leak("prefix_bidir")))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref"  # uninterrupted, in this process (same threads: same numbers)
    finetune(
        FinetuneSpec.parse("prefix_bidir", params),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=ref,
        probe_result=no_leak("prefix_bidir"),
    )

    out = tmp_path / "killed"
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(
        _cli(out, sft_file, tiny_model_dir, params), stdout=log, stderr=subprocess.STDOUT, env=env
    )
    marker = out / "checkpoints" / "checkpoint-4" / checkpoint_integrity.CHECKPOINT_MARKER
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no checkpoint-4 within 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    steps_logged = [
        int(line.split("step ")[1].split("/")[0])
        for line in open(tmp_path / "killed.log")
        if line.startswith("[finetune prefix_bidir] step ")
    ]
    reached = max(steps_logged)
    assert reached < params["max_steps"] and not (out / "summary.json").exists()
    done = checkpoint_integrity.complete_checkpoints(out / "checkpoints")
    last_saved = int(done[-1].name.split("-")[-1])
    # a save cut off by the kill looks like this: no marker, so it must be ignored and removed
    half = out / "checkpoints" / f"checkpoint-{last_saved + 2}"
    if not half.exists():
        half.mkdir()
        (half / "model.safetensors").write_bytes(b"truncated")

    capsys.readouterr()
    # the rerun in this process, as the reference ran (the library's resume; the command line's
    # start is the killed run's): one interpreter less
    finetune(
        FinetuneSpec.parse("prefix_bidir", params),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=out,
        probe_result=no_leak("prefix_bidir"),
    )
    said = capsys.readouterr().out
    assert f"resuming from {out / 'checkpoints' / f'checkpoint-{last_saved}'}" in said, said
    s, r = (
        json.loads((out / "summary.json").read_text()),
        json.loads((ref / "summary.json").read_text()),
    )
    assert s["resumed_from_step"] == last_saved >= 4
    assert (
        reached - s["resumed_from_step"] <= params["save_steps"]
    )  # lost at most one save interval
    assert s["steps_done"] == r["steps_done"] == 8
    # the same run as without the kill: same losses step by step, same final weights
    for a, b in zip(s["curves"]["train"], r["curves"]["train"], strict=True):
        assert a["step"] == b["step"] and a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-4)
    wa, wb = weights(out / "final"), weights(ref / "final")
    for k in wb:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- loss_vocab: corpus


@pytest.mark.slow
def test_pretrain_loss_vocab_corpus_trains_only_the_corpus_rows(tekken_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = synthetic_rows(30, seed=2)
    corpus.write_text("".join(json.dumps({"text": r["output"]}) + "\n" for r in rows))
    params = {"max_steps": 4, "batch_size": 2, "max_seq_len": 32, "eval_size": 1}
    params |= {"eval_steps": 4, "logging_steps": 1, "learning_rate": 3e-3, "weight_decay": 0.0}
    out = tmp_path / "pre"
    summary = pretrain(
        corpus=corpus,
        tokenizer_dir=tekken_dir,
        arch={"num_hidden_layers": 1, "tie_word_embeddings": False},
        params=resolve_params({**params, "loss_vocab": "corpus"}, "pretrain"),
        out_dir=out,
    )
    assert summary["params"]["loss_vocab"] == "corpus" and summary["steps_done"] == 4
    train = summary["curves"]["train"]
    assert train[-1]["loss"] < train[0]["loss"]
    from ablate.core.models import modeling
    from ablate.core.training.data import load_corpus, pack_corpus
    from ablate.core.training.pretraining import random_model
    from ablate.mask import tiny

    tok = modeling.load_tokenizer(tekken_dir)
    used = sorted({t for b in pack_corpus(tok, load_corpus(corpus), 32) for t in b})
    trained = load_causal_lm(out / "final").lm_head.weight.detach()
    init = random_model(
        tiny.tiny_ministral3_config(
            num_hidden_layers=1, tie_word_embeddings=False, pad_token_id=tok.pad_token_id
        ),
        seed=0,
    ).lm_head.weight.detach()
    moved = (trained != init).any(dim=1)
    assert moved[used].all() and moved.sum() == len(used)  # only the corpus' rows learn


@pytest.mark.slow
def test_pretrain_on_the_corpus_rows_alone_gives_the_whole_tables_weights_bit_for_bit(
    tekken_dir, tmp_path, monkeypatch, capsys
):
    """``loss_vocab: corpus`` trains a table of the data's rows in the tied 131k-row table's place
    (ablate.core.training.vocab_rows): the saved weights are those of stepping the whole table,
    bit for bit, clipped steps included (the first gradient norm is above max_grad_norm 1)."""
    from ablate.core.training import vocab_rows

    corpus = tmp_path / "corpus.jsonl"
    rows = synthetic_rows(30, seed=2)
    corpus.write_text("".join(json.dumps({"text": r["output"]}) + "\n" for r in rows))
    params = {"max_steps": 6, "batch_size": 2, "max_seq_len": 32, "eval_size": 1}
    params |= {"eval_steps": 6, "logging_steps": 1, "learning_rate": 3e-3, "weight_decay": 0.0}
    params = resolve_params(
        {**params, "loss_vocab": "corpus", "optim": "adamw_torch_fused"}, "pretrain"
    )

    def run(name):
        out = tmp_path / name
        summary = pretrain(
            corpus=corpus, tokenizer_dir=tekken_dir, arch={"num_hidden_layers": 1},
            params=params, out_dir=out,
        )  # fmt: skip
        return summary, weights(out / "final")

    cut, cut_weights = run("cut")
    assert "each step covers the data's" in capsys.readouterr().out
    monkeypatch.setattr(vocab_rows, "why_not", lambda *a: "not cut, for the comparison")
    whole, whole_weights = run("whole")
    assert "each step covers all 131072 rows" in capsys.readouterr().out
    assert cut["curves"]["train"][0]["grad_norm"] > params.max_grad_norm  # a clipped step
    assert cut["curves"]["train"] == whole["curves"]["train"]
    assert cut_weights.keys() == whole_weights.keys()
    for name, w in whole_weights.items():
        assert torch.equal(cut_weights[name], w), name


@pytest.mark.parametrize("vocab", ["full", "corpus"])
@pytest.mark.slow
def test_finetune_loss_vocab_corpus_trains_only_the_pairs_rows(
    tiny_model_dir, sft_file, tmp_path, vocab
):
    """A finetune's ``loss_vocab: corpus`` is the softmax over the SFT pairs' own ids: the (tied)
    embedding rows of other tokens keep their values, where the full softmax moves them all."""
    out = tmp_path / vocab
    params = {**FAST, "weight_decay": 0.0, "loss_vocab": vocab}
    summary = finetune(
        FinetuneSpec.parse("prefix_bidir", params),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=out,
        probe_result=no_leak("prefix_bidir"),
    )
    train = summary["curves"]["train"]
    assert summary["params"]["loss_vocab"] == vocab and train[-1]["loss"] < train[0]["loss"]
    before = weights(tiny_model_dir)["lm_head.weight"]
    moved = (weights(out / "final")["lm_head.weight"] != before).any(dim=1)
    if vocab == "corpus":
        assert 0 < moved.sum() < 1000  # the pairs' few hundred ids
    else:
        assert moved.float().mean() > 0.9
