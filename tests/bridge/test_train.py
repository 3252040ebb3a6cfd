"""Bridge study: one grid entry's training, restore-best, the gold-leak guard, latent inputs, ablation 4."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from bridge_fixtures import MICRO_PARAMS

from ablate.bridge import evaluate, infer, train, world
from ablate.bridge import params as bridge_params
from ablate.bridge.pair import load_pair
from ablate.core.outputs import checkpoint_integrity


def test_train_entry_writes_every_output(bridge_entry):
    out, summary = bridge_entry
    checkpoint_integrity.verify(out / "translator")
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["run_id"] == "micro-0001" == summary["run_id"]
    steps = [c["step"] for c in on_disk["curve"]]
    assert steps[0] == 0 and steps[-1] == on_disk["steps_done"]  # step 0, every N, the end
    assert on_disk["peak"] == max(c["accuracy"] for c in on_disk["curve"])
    assert on_disk["degradation"] == pytest.approx(on_disk["peak"] - on_disk["final"])
    for key in ("peak_step", "stop_reason", "wall_s", "train_tokens", "throughput", "params",
                "compression_ratio", "provenance"):  # fmt: skip
        assert key in on_disk, key
    assert on_disk["provenance"]["run_id"] == "micro-0001"
    samples = pd.read_parquet(out / "samples.parquet")
    assert len(samples) == MICRO_PARAMS["eval_size"]
    assert {"id", "prediction", "gold", "correct", "em", "f1"} <= set(samples.columns)
    assert samples["correct"].mean() == pytest.approx(on_disk["final"])


def test_frozen_models_only_translator_learns(bridge_cards):
    p = bridge_params.check(bridge_params.resolve(MICRO_PARAMS))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    for m in (pair.source, pair.target):
        assert not m.training and not any(t.requires_grad for t in m.parameters())


def test_training_forward_fills_no_kv_cache(bridge_cards, bridge_world, monkeypatch):
    """The training loss runs the frozen target without a KV cache (a hub model's config asks
    for one: a training forward would only fill it, and compiled layers recompile per layer on
    it) and with its layers compiled when the pair says so (train.fit: on CUDA)."""
    from ablate.core.training import speed

    p = bridge_params.check(bridge_params.resolve(MICRO_PARAMS))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    pair.target.config.use_cache = True  # as a hub model's config says
    calls, switched = [], []
    body = pair.target.base_model
    forward = body.forward
    monkeypatch.setattr(body, "forward", lambda *a, **k: calls.append(k) or forward(*a, **k))
    monkeypatch.setattr(
        speed, "layers_compiled", lambda model, on=True: switched.append(on) or _nothing()
    )
    items = world.load_dataset(bridge_world["gsm8k_train"], "gsm8k")[:2]
    translator = train.tr.BottleneckedGatedTranslator(
        d_src=pair.source.config.hidden_size,
        d_tgt=pair.target.config.hidden_size,
        target_rms=1.0,
        **{k: getattr(p, k) for k in train.tr.ARCH_KEYS},
    )
    for compiled in (False, True):
        pair.compiled = compiled
        pair.loss(translator, items, 1)
    assert calls and all(k.get("use_cache") is False for k in calls)
    assert switched == [False, True]


def _train_gsm8k(run_id: str, params: dict, cards: dict, world_files: dict, out):
    """One training run of the embedded pair on the embedded world's GSM8K: its summary."""
    return train.train_entry(
        bridge_params.RunSpec.parse(run_id, params, "gsm8k"),
        source_card=cards["source"],
        target_card=cards["target"],
        train_file=world_files["gsm8k_train"],
        eval_file=world_files["gsm8k_test"],
        out_dir=out,
    )


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_restore_best_reevaluates_the_best_state(bridge_world, bridge_cards, tmp_path, monkeypatch):
    """Scripted evaluations peak at step 2 and fall after: final must be step 2's weights."""
    scripted = iter([0.25, 0.75, 0.25, 0.0])  # steps 0, 2, 4, then the final re-evaluation
    seen = []

    def fake_evaluate(pair, translator, items):
        seen.append({k: v.clone() for k, v in translator.state_dict().items()})
        acc = next(scripted)
        n = len(items)
        return [
            {"id": it["id"], "prediction": "", "extracted": "", "gold": "1",
             "correct": i < acc * n, "em": float(i < acc * n), "f1": float(i < acc * n)}
            for i, it in enumerate(items)
        ]  # fmt: skip

    monkeypatch.setattr(train, "_evaluate", fake_evaluate)
    params = {**MICRO_PARAMS, "early_stopping": False, "lr": 0.05}
    s = _train_gsm8k("restore", params, bridge_cards, bridge_world, tmp_path)
    assert [c["accuracy"] for c in s["curve"]] == [0.25, 0.75, 0.25]
    assert s["peak"] == 0.75 and s["peak_step"] == 2 and s["restored_from_step"] == 2
    assert len(seen) == 4
    at_peak, at_end, final = seen[1], seen[2], seen[3]
    assert any(not torch.equal(at_peak[k], at_end[k]) for k in at_peak)  # training moved on
    assert all(torch.equal(at_peak[k], final[k]) for k in at_peak)  # the final is the best
    assert s["final"] == 0.0 and s["degradation"] == 0.75  # final is measured, not copied
    from ablate.bridge import translator

    saved = translator.load(tmp_path / "translator").state_dict()
    assert all(torch.equal(at_peak[k], saved[k]) for k in at_peak)


def test_early_stopping_with_patience(bridge_world, bridge_cards, tmp_path, monkeypatch):
    def flat(pair, translator, items):
        return [{"id": it["id"], "prediction": "", "extracted": "", "gold": "1",
                 "correct": False, "em": 0.0, "f1": 0.0} for it in items]  # fmt: skip

    monkeypatch.setattr(train, "_evaluate", flat)
    params = {**MICRO_PARAMS, "steps": 20, "eval_every": 2, "patience": 2}
    s = _train_gsm8k("stop", params, bridge_cards, bridge_world, tmp_path)
    assert s["stop_reason"] == "early_stopping" and s["steps_done"] == 4
    assert [c["step"] for c in s["curve"]] == [0, 2, 4]


def test_gold_leak_is_refused(bridge_cards, bridge_world, monkeypatch):
    p = bridge_params.check(bridge_params.resolve(MICRO_PARAMS))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    item = world.load_dataset(bridge_world["gsm8k_test"], "gsm8k")[0]
    gold = item["answer"].split("#### ")[-1]
    # the seed's 1b fault: the evaluation prompt carried the answer
    real_prompt = world.prompt
    monkeypatch.setattr(
        world, "prompt", lambda kind, it: real_prompt(kind, it) + world.answer_text(kind, it)
    )
    with pytest.raises(evaluate.GoldLeakError, match=item["id"]):
        pair.evaluate_latent(None, [item])  # refused before the translator is ever called
    with pytest.raises(evaluate.GoldLeakError, match=item["id"]):
        bench = infer.Bench(pair, translator=None)
        bench.run("target_alone", item)
    monkeypatch.setattr(world, "prompt", real_prompt)
    leaked = {**item, "question": item["question"] + f" (#### {gold})"}
    with pytest.raises(evaluate.GoldLeakError, match="gold answer"):
        evaluate.check_no_gold("gsm8k", leaked, pair.fed_latent(leaked))
    evaluate.check_no_gold("gsm8k", item, pair.fed_latent(item))  # the clean item passes
    qa = world.load_dataset(bridge_world["qa_test"], "qa")[0]
    evaluate.check_no_gold("qa", qa, {"prompt": world.prompt("qa", qa)})  # context may name it
    with pytest.raises(evaluate.GoldLeakError):
        evaluate.check_no_gold("qa", qa, {"prompt": world.prompt("qa", qa) + " " + qa["answer"]})


def test_latent_mode_feeds_no_question_text(bridge_cards, bridge_world):
    p = bridge_params.check(bridge_params.resolve(MICRO_PARAMS))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    item = world.load_dataset(bridge_world["gsm8k_test"], "gsm8k")[0]
    before, after = evaluate.latent_target_ids(pair.tgt_tok)
    assert before == [pair.tgt_tok.bos_token_id]
    assert pair.tgt_tok.decode(after).strip() == world.ANSWER_CUE
    soft = torch.zeros(1, p.K, pair.target.config.hidden_size)
    embeds, mask, n = pair.latent_embeds(soft)
    assert embeds.shape[1] == n == 1 + p.K + len(after)  # nothing but BOS, K soft, the cue
    emb = pair.target.get_input_embeddings()
    expect = emb(torch.tensor(after))
    assert torch.equal(embeds[0, 1 + p.K :], expect)
    fed = pair.fed_latent(item)["target input (around the soft tokens)"]
    assert item["question"] not in fed and fed.strip() == world.ANSWER_CUE


def test_benchmark_writes_five_baselines_per_sample(
    bridge_entry, bridge_cards, bridge_world, tmp_path
):
    out, _ = bridge_entry
    agg = infer.benchmark(
        bridge_params.RunSpec.parse(
            "micro-0001", {**MICRO_PARAMS, "eval_size": 2}, "gsm8k", timed_samples=1
        ),
        source_card=bridge_cards["source"],
        target_card=bridge_cards["target"],
        translator_dir=out / "translator",
        eval_file=bridge_world["gsm8k_test"],
        out_samples=tmp_path / "samples.parquet",
        out_summary=tmp_path / "summary.csv",
    )
    s = pd.read_parquet(tmp_path / "samples.parquet")
    assert len(s) == 2 * 5
    # every item scored (batched); the first one timed again at batch 1, and the rows say so
    first = s["id"] == s["id"].iloc[0]
    assert s["timed"].tolist() == first.tolist()
    assert s.loc[first, "latency_s"].gt(0).all() and s.loc[~first, "latency_s"].isna().all()
    assert s.loc[first, "timing"].str.startswith("batch 1").all()
    assert s.loc[~first, "timing"].str.startswith("not timed").all()
    assert (agg["n_timed"] == 1).all() and agg["latency_p90_s"].gt(0).all()
    for _, rows in s.groupby("id"):
        assert sorted(rows["baseline"]) == sorted(infer.BASELINES)
    for col in ("input_tokens", "output_tokens", "kv_cache_mb", "latency_s", "peak_mem_mb",
                "peak_mem_kind", "em", "f1", "correct"):  # fmt: skip
        assert col in s.columns, col
    lat = s[s.baseline == "latent"].iloc[0]
    assert lat.input_tokens == 1 + MICRO_PARAMS["K"] + len(
        evaluate.cue_ids(load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k",
                                   bridge_params.check(bridge_params.resolve(MICRO_PARAMS))).tgt_tok)
    )  # fmt: skip
    budget = s[s.baseline == "token_budget"].iloc[0]
    assert budget.input_tokens == lat.input_tokens  # the same input length: a fair comparison
    assert (s.kv_cache_mb > 0).all()
    # total = the answering model's cache + the source's for the same item
    kv = json.loads((tmp_path / "summary.csv.provenance.json").read_text())["kv_cache_mb_per_token"]
    src = s.source_input_tokens.fillna(0) + s.source_output_tokens.fillna(0)
    want = s.kv_cache_mb + kv["source"] * src.where(s.model == "target", 0)
    assert s.kv_cache_total_mb.tolist() == pytest.approx(want.tolist())
    assert (
        s[s.baseline == "latent"].kv_cache_total_mb > s[s.baseline == "latent"].kv_cache_mb
    ).all()
    assert list(agg["baseline"]) == list(infer.BASELINES) and (agg["n"] == 2).all()
    assert pd.read_csv(tmp_path / "summary.csv").shape[0] == 5
    assert (tmp_path / "summary.csv.provenance.json").exists()


def test_token_budget_is_the_start_of_the_full_prompt(bridge_cards, bridge_world, monkeypatch):
    """A prompt longer than max_prompt_len: the budget is its first K tokens, not the first K
    of the prompt already cut from the left (which start mid-question)."""
    p = bridge_params.check(bridge_params.resolve({**MICRO_PARAMS, "K": 3, "max_prompt_len": 12}))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    item = world.load_dataset(bridge_world["gsm8k_test"], "gsm8k")[0]
    item = {**item, "question": "Gin has many cards. " * 4 + item["question"]}
    assert len(pair.tgt_tok(world.prompt("gsm8k", item))["input_ids"]) > 12  # long
    fed = []

    def fake_gen(self, which, id_lists):  # what the bench hands the engine
        fed.extend(id_lists)
        return ["#### 1"] * len(id_lists), [1] * len(id_lists)

    monkeypatch.setattr(infer.Bench, "_gen", fake_gen)
    translator = SimpleNamespace(config={"K": 3})
    row = infer.Bench(pair, translator).run("token_budget", item)
    full = pair.tgt_tok(world.prompt("gsm8k", item))["input_ids"]
    assert fed == [full[:4] + evaluate.cue_ids(pair.tgt_tok)]
    assert pair.tgt_tok.decode(fed[0], skip_special_tokens=True).startswith("Question: G")
    assert row["input_tokens"] == 1 + 3 + len(evaluate.cue_ids(pair.tgt_tok))


def test_same_tokenizer_on_both_sides_is_refused(bridge_cards):
    from ablate.bridge import models

    _, src_tok = models.load(bridge_cards["source"])
    _, tgt_tok = models.load(bridge_cards["target"])
    models.check_distinct_tokenizers(src_tok, tgt_tok)  # the embedded pair: two tokenizers
    with pytest.raises(models.ModelSetupError, match="same tokenizer"):
        models.check_distinct_tokenizers(src_tok, src_tok)


def test_a_nonfinite_loss_ends_at_the_last_checkpoint_by_the_loops_rule(
    bridge_world, bridge_cards, tmp_path, monkeypatch
):
    """A NaN loss at step 5 (checkpoints at 2 and 4): the loop's stop rule (the one of every
    training) reads it at the next logging step and the final translator is checkpoint 4's, the
    weights its evaluation saw; a NaN before any checkpoint fails the job, as a finetune's does."""
    from ablate.bridge import translator
    from ablate.bridge.pair import Pair
    from ablate.core.training.params import TrainingError

    seen, loss_once = {}, Pair.loss
    evaluate_once = train._evaluate

    def recording(pair, model, items):
        seen[len(seen)] = {k: v.clone() for k, v in model.state_dict().items()}
        return evaluate_once(pair, model, items)

    def nan_at(bad):
        def loss(pair, model, items, step, *a, **kw):
            total, parts, n = loss_once(pair, model, items, step, *a, **kw)
            return (total * float("nan") if step == bad else total), parts, n

        return loss

    monkeypatch.setattr(train, "_evaluate", recording)
    monkeypatch.setattr(Pair, "loss", nan_at(5))
    params = {**MICRO_PARAMS, "steps": 6, "early_stopping": False, "restore_best": False}
    s = _train_gsm8k("nan", {**params, "log_every": 1}, bridge_cards, bridge_world, tmp_path)
    assert s["stop_reason"] == "nonfinite" and s["steps_done"] == 5
    assert [c["step"] for c in s["curve"]] == [0, 2, 4] and s["final"] == s["curve"][-1]["accuracy"]
    saved = translator.load(tmp_path / "translator").state_dict()
    assert all(torch.equal(seen[2][k], saved[k]) for k in saved)  # step 4's, evaluated
    monkeypatch.setattr(Pair, "loss", nan_at(1))
    with pytest.raises(TrainingError, match="non-finite at step 1 before any checkpoint"):
        _train_gsm8k("nan1", params, bridge_cards, bridge_world, tmp_path / "early")


def test_a_killed_training_resumes_from_its_last_checkpoint(
    bridge_world, bridge_cards, tmp_path, monkeypatch, capsys
):
    """Killed in step 5 (checkpoints at steps 2 and 4, their evaluations): the rerun resumes at 4,
    says so, and ends with the curve, losses and translator of an uninterrupted run; the
    checkpoints are gone once the run finished."""
    from ablate.bridge import translator
    from ablate.bridge.pair import Pair
    from ablate.core.training import saving

    params = {**MICRO_PARAMS, "steps": 6, "early_stopping": False, "log_every": 1}

    def run(out):
        return _train_gsm8k("resume", params, bridge_cards, bridge_world, out)

    ref = run(tmp_path / "ref")
    assert ref["resumed_from_step"] is None
    loss_once = Pair.loss

    def killed_in_5(pair, model, items, step, *a, **kw):
        if step == 5:
            raise KeyboardInterrupt("killed")  # as a lost instance: no clean-up runs
        return loss_once(pair, model, items, step, *a, **kw)

    monkeypatch.setattr(Pair, "loss", killed_in_5)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(out)
    ckpts = checkpoint_integrity.complete_checkpoints(out / checkpoint_integrity.CHECKPOINTS_DIR)
    assert [c.name for c in ckpts] == ["checkpoint-4"]  # the older one went once 4 was complete
    names = {saving.WEIGHTS, saving.EVALUATION, saving.LOOP_STATE}
    assert {p.name for p in ckpts[0].iterdir()} >= names | {"rng_state.pth"}
    (
        out / checkpoint_integrity.CHECKPOINTS_DIR / "checkpoint-6"
    ).mkdir()  # cut off mid-save: ignored
    monkeypatch.setattr(Pair, "loss", loss_once)
    capsys.readouterr()
    s = run(out)
    assert (
        f"resuming from {out / checkpoint_integrity.CHECKPOINTS_DIR / 'checkpoint-4'} (step 4)"
        in (capsys.readouterr().out)
    )
    assert s["resumed_from_step"] == 4 and s["steps_done"] == 6
    # the record names both segments of the training (where each ran), not the last alone
    assert [g["steps"] for g in s["provenance"]["training_segments"]] == [[1, 4], [5, 6]]
    assert s["curve"] == ref["curve"] and s["final"] == ref["final"]
    for a, b in zip(s["losses"], ref["losses"], strict=True):
        assert a["step"] == b["step"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    got = translator.load(out / "translator").state_dict()
    want = translator.load(tmp_path / "ref" / "translator").state_dict()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    assert not (out / checkpoint_integrity.CHECKPOINTS_DIR).exists()


class Killed(Exception):
    """SIGTERM's default action here: the job ends where it is (pytest lives on)."""


def _signalled_while_saving(run, monkeypatch, capsys) -> dict:
    """``run()`` with a SIGTERM sent as the translator is saved (raised as :class:`Killed` if
    it ends the job): its result, after checking that the signal waited for the outputs."""
    import os
    import signal

    from ablate.bridge import translator

    save = translator.save

    def signalled_save(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return save(*args, **kwargs)

    def kill(signum, frame):
        raise Killed

    monkeypatch.setattr(translator, "save", signalled_save)
    before = signal.signal(signal.SIGTERM, kill)
    try:
        result = run()
    finally:
        signal.signal(signal.SIGTERM, before)
    monkeypatch.setattr(translator, "save", save)
    assert "[interrupt] SIGTERM came while the outputs were written" in capsys.readouterr().out
    return result


def _delete_outputs(out) -> None:
    """The job's outputs removed, as Snakemake deletes those of a job it marked incomplete."""
    import shutil

    for name in ("translator", "samples.parquet", "summary.json"):
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()


def _rerun_resumes_at(step: int, run, out, first: dict) -> dict:
    """After a signalled run: its newest checkpoint alone kept, at ``step``; the rerun after
    Snakemake deleted the outputs resumes there, to the same curve and translator, and removes
    the checkpoints. Returns the rerun's result."""
    from ablate.bridge import translator

    kept = checkpoint_integrity.complete_checkpoints(out / checkpoint_integrity.CHECKPOINTS_DIR)
    assert [c.name for c in kept] == [f"checkpoint-{step}"]
    trained = translator.load(out / "translator").state_dict()
    _delete_outputs(out)
    again = run()
    assert again["resumed_from_step"] == step and again["curve"] == first["curve"]
    got = translator.load(out / "translator").state_dict()
    assert all(torch.equal(got[k], trained[k]) for k in trained)
    assert not (out / checkpoint_integrity.CHECKPOINTS_DIR).exists()
    return again


def test_a_signal_while_the_outputs_are_written_keeps_the_training(
    bridge_world, bridge_cards, tmp_path, monkeypatch, capsys
):
    """SIGTERM while the translator is saved (the training ended at step 4, checkpointed there):
    the signal waits, the outputs are completed, the checkpoints stay (they went before the
    outputs were written); after Snakemake deleted the outputs of the job it marked
    incomplete, the rerun resumes at step 4, not step 0, to the same translator."""

    out = tmp_path / "run"

    def run():
        return _train_gsm8k("late-signal", MICRO_PARAMS, bridge_cards, bridge_world, out)

    first = _signalled_while_saving(run, monkeypatch, capsys)
    checkpoint_integrity.verify(out / "translator")
    assert json.loads((out / "summary.json").read_text())["steps_done"] == 4
    _rerun_resumes_at(4, run, out, first)


def test_a_signal_after_a_last_step_between_checkpoints_keeps_that_step(
    bridge_world, bridge_cards, tmp_path, monkeypatch, capsys
):
    """5 steps, checkpoints at 2 and 4: SIGTERM while the translator is saved keeps a checkpoint
    of the finished training (step 5, saved then: the core driver's, as a finetune's), so the
    rerun after Snakemake deleted the outputs resumes at step 5 and trains no step again, to the
    same translator and curve (the bridge's own driver kept checkpoint 4 and retrained step 5)."""

    params, out = {**MICRO_PARAMS, "steps": 5}, tmp_path / "run"

    def run():
        return _train_gsm8k("last-step", params, bridge_cards, bridge_world, out)

    first = _signalled_while_saving(run, monkeypatch, capsys)
    assert first["steps_done"] == 5 and [c["step"] for c in first["curve"]] == [0, 2, 4, 5]
    assert _rerun_resumes_at(5, run, out, first)["final"] == first["final"]
