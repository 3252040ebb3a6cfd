"""Entry points: :func:`finetune` (SFT under a policy, leakage gate) and :func:`pretrain` (tiny model)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerState

from ablate.core import checkpoint, io, provenance
from ablate.core.phases import Phases
from ablate.mask import masks, sft_data
from ablate.core.training.callbacks import StopRules
from ablate.core.training.data import ExampleDataset, load_corpus, pack_corpus, sft_examples
from ablate.core.training.params import (
    LeakageGateError,
    TrainingConfigError,
    TrainingError,
    model_dtype,
    resolve_params,
    save_dtype,
)
from ablate.core.training.trainer import build_trainer, save_final, vocab_head_loss


def _curves(log_history: list[dict]) -> dict[str, list[dict]]:
    train = [
        {k: e[k] for k in ("step", "loss", "learning_rate", "grad_norm") if k in e}
        for e in log_history
        if "loss" in e
    ]
    evals = [
        {"step": e["step"], "eval_loss": e["eval_loss"]} for e in log_history if "eval_loss" in e
    ]
    return {"train": train, "eval": evals}


def train_run(
    *,
    kind: str,
    model,
    tokenizer,
    train_dataset,
    eval_dataset,
    policy: str,
    params: dict[str, Any],
    out_dir: Path,
    run_key: dict[str, Any],
    summary_extra: dict[str, Any],
    config_slice: Any,
    inputs: dict[str, str | os.PathLike],
    phases: Phases,
    callbacks: list | None = None,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    head_loss = None
    if params.get("loss_vocab") == "corpus":  # docs/training.md
        # the data's own ids: every target of a block or pair, held-out ones included, is one
        blocks = [
            ds[i]["input_ids"]
            for ds in (train_dataset, eval_dataset)
            if ds is not None
            for i in range(len(ds))
        ]
        head_loss = vocab_head_loss(t for b in blocks for t in b)
    ckpt_dir = out_dir / "checkpoints"
    resume_from = checkpoint.prepare_resume(ckpt_dir, run_key)
    resumed_from_step = int(resume_from.name.split("-")[-1]) if resume_from else None
    label = f"{kind} {policy}" if kind == "finetune" else kind
    with phases("build_trainer"):
        trainer, stop_rules, throughput = build_trainer(
            model=model,
            tokenizer=tokenizer,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            policy=policy,
            params=params,
            output_dir=ckpt_dir,
            label=label,
            extra_callbacks=callbacks,
            head_loss=head_loss,
        )
    prior_stop = None
    if resume_from:
        print(f"[{label}] resuming from {resume_from}", flush=True)
        prior = TrainerState.load_from_json(str(resume_from / "trainer_state.json"))
        # killed after a stop rule fired at a save step, before the final save: do not train on
        prior_stop = StopRules(params).replay(prior.log_history)
    if prior_stop:
        trainer._load_from_checkpoint(str(resume_from))
        trainer.state, train_out = prior, None
        stop_rules.stop = prior_stop
    else:
        with phases("train"):
            train_out = trainer.train(
                resume_from_checkpoint=str(resume_from) if resume_from else None
            )
        # the optimizer steps alone; the rest of "train" is evals, saves, the loop's set-up
        phases.add("train.steps", sum(throughput.step_times))
    state = trainer.state
    stop = stop_rules.stop or {
        "reason": "max_steps",
        "step": state.global_step,
        "detail": {"max_steps": params["max_steps"]},
    }

    def write_summary(ckpt_info: dict[str, Any] | None) -> dict[str, Any]:
        summary = _summary(
            kind,
            policy,
            params,
            state,
            stop,
            throughput,
            train_out,
            resumed_from_step,
            ckpt_info,
            summary_extra,
            config_slice,
            inputs,
            phases,
        )
        io.write_json(out_dir / checkpoint.SUMMARY_NAME, summary)
        return summary

    if stop["reason"] == "nonfinite":
        good = [
            c
            for c in checkpoint.complete_checkpoints(ckpt_dir)
            if int(c.name.split("-")[-1]) < stop["step"]
        ]
        if not good:
            write_summary(None)
            raise TrainingError(
                f"{label}: loss became non-finite at step {stop['step']} before any checkpoint was "
                f"saved; nothing good to keep (lower learning_rate?). See {out_dir / 'summary.json'}"
            )
        trainer._load_from_checkpoint(str(good[-1]))
        if trainer.master_optimizer is not None:
            trainer.master_optimizer.sync_master_from_model()
        stop["detail"]["restored_from_step"] = int(good[-1].name.split("-")[-1])
        print(
            f"[{label}] non-finite loss at step {stop['step']}: final = checkpoint {good[-1].name}",
            flush=True,
        )
    elif trainer.args.eval_strategy != "no" and not any(
        e.get("step") == state.global_step and "eval_loss" in e for e in state.log_history
    ):
        with phases("final_eval"):
            trainer.evaluate()  # so the summary's last eval loss belongs to the final weights
    ckpt_info = save_final(
        trainer,
        out_dir,
        dtype=save_dtype(params),
        extra={"kind": kind, "policy": policy, "step": state.global_step},
        phases=phases,
    )
    if not params["keep_checkpoints"]:
        with phases("remove_checkpoints"):
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    summary = write_summary(ckpt_info)
    print(
        f"[{label}] done: {state.global_step} steps, stop reason {stop['reason']}, "
        f"final checkpoint {ckpt_info['path']} ({ckpt_info['format']})",
        flush=True,
    )
    return summary


def _summary(
    kind,
    policy,
    params,
    state,
    stop,
    throughput,
    train_out,
    resumed_from_step,
    ckpt_info,
    extra,
    config_slice,
    inputs,
    phases,
) -> dict[str, Any]:
    curves = _curves(state.log_history)
    evals = [e["eval_loss"] for e in curves["eval"]]
    tp = throughput.summary()
    tp["train_runtime_s"] = (
        train_out.metrics.get("train_runtime") if train_out is not None else None
    )
    return {
        "kind": kind,
        "policy": policy,
        "steps_done": state.global_step,
        "max_steps": params["max_steps"],
        "stop": stop,
        "resumed_from_step": resumed_from_step,
        "final_train_loss": curves["train"][-1]["loss"] if curves["train"] else None,
        "final_eval_loss": evals[-1] if evals else None,
        "best_eval_loss": min(evals) if evals else None,
        "curves": curves,
        "throughput": tp,
        "tokens_seen": state.num_input_tokens_seen,
        "checkpoint": ckpt_info,
        "params": params,
        **extra,
        "provenance": provenance.collect(
            config_slice=config_slice
            if config_slice is not None
            else {"policy": policy, "params": params},
            inputs=inputs,
            started=phases.started,
        ),
        "phases": phases.as_dict(),  # after provenance: its git call and fingerprints count
    }


def _leakage_gate(model, pairs, policy, params, probe_result, allow_leakage) -> dict:
    """Run (or take) the leakage probe for the training policy; refuse a leaking policy unless allowed."""
    if probe_result is None:
        from ablate.mask import leakage

        kw = {"batch_size": params["probe_batch_size"]}
        if params["probe_threshold"] is not None:
            kw["threshold"] = params["probe_threshold"]
        sample = pairs[: params["probe_size"]]
        print(f"[finetune {policy}] leakage probe on {len(sample)} held-out pairs", flush=True)
        probe_result = leakage.probe(model, sample, policy, **kw)
    elif probe_result.get("policy") != policy:
        raise TrainingConfigError(
            f"leakage gate: the given probe result is for policy {probe_result.get('policy')!r}, "
            f"but training uses {policy!r}"
        )
    if probe_result.get("leaks") and not allow_leakage:

        def g(key):
            value = probe_result.get(key)
            return f"{value:.4g}" if isinstance(value, (int, float)) else "?"

        evidence = []
        if probe_result.get("future_dependent"):
            evidence.append(
                f"response losses move by up to {g('future_sensitivity')} nats when only a later "
                f"token changes"
            )
        evidence.append(
            f"response loss {g('loss_policy')} under {policy} vs {g('loss_causal')} causal "
            f"(ratio {g('ratio')}, leak threshold < {g('threshold')})"
        )
        raise LeakageGateError(
            f"leakage gate: training under policy {policy!r} leaks labels: {'; '.join(evidence)}. "
            f"The model would learn to read the answer. To reproduce this on purpose set "
            f"allow_leakage: true for this finetune variant (CLI: --allow-leakage)."
        )
    return {**probe_result, "allowed": bool(allow_leakage and probe_result.get("leaks"))}


def finetune(
    *,
    model_path: str | os.PathLike,
    data: str | os.PathLike,
    policy: str,
    params: dict | None,
    out_dir: str | os.PathLike,
    revision: str | None = None,
    probe_result: dict | None = None,
    allow_leakage: bool = False,
    config_slice: Any = None,
    callbacks: list | None = None,
) -> dict[str, Any]:
    """Full-weight SFT of ``model_path`` on Alpaca rows from ``data`` under ``policy``.

    ``revision`` pins a hub id ``model_path`` (ignored for a directory).
    Writes ``out_dir/final/`` (safetensors + tokenizer + manifest) and ``out_dir/summary.json``;
    Trainer checkpoints go to ``out_dir/checkpoints/`` and a rerun resumes from the last complete
    one. Raises :class:`LeakageGateError` before training when the policy leaks and
    ``allow_leakage`` is false. ``callbacks``: extra Trainer callbacks (ablate.core.tracking).
    """
    from ablate.core.modeling import load_causal_lm, load_tokenizer

    phases = Phases()
    masks.check_policy(policy)
    p = resolve_params(params, "finetune")
    with phases("data"):
        rows = sft_data.load_rows(data)
        if p["eval_size"]:
            train_rows, eval_rows = sft_data.split_rows(rows, p["eval_size"], p["seed"])
        else:
            train_rows, eval_rows = rows, []
        tokenizer = load_tokenizer(model_path, revision=revision)
        train_pairs = sft_data.tokenize_rows(tokenizer, train_rows, p["max_seq_len"])
        eval_pairs = sft_data.tokenize_rows(tokenizer, eval_rows, p["max_seq_len"])
    print(
        f"[finetune {policy}] {len(train_pairs)} train / {len(eval_pairs)} eval pairs from {data}; "
        f"loading {model_path}",
        flush=True,
    )
    with phases("load_model"):  # the manifest's hashes checked while the weights load
        model = load_causal_lm(
            model_path,
            revision=revision,
            dtype=model_dtype(p),
            attn_implementation=p["attn_implementation"],
            device="cuda" if torch.cuda.is_available() else None,
        )
    with phases("leakage_gate"):
        gate = _leakage_gate(
            model, eval_pairs or train_pairs, policy, p, probe_result, allow_leakage
        )
    model.config.use_cache = False
    run_key = {
        "kind": "finetune",
        "model_path": str(model_path),
        "revision": revision,
        "data": str(data),
        "policy": policy,
        "params": p,
        "allow_leakage": bool(allow_leakage),
    }
    inputs = {"model": model_path}
    if Path(data).exists():
        inputs["data"] = data
    return train_run(
        kind="finetune",
        model=model,
        tokenizer=tokenizer,
        train_dataset=sft_examples(train_pairs),
        eval_dataset=sft_examples(eval_pairs),
        policy=policy,
        params=p,
        out_dir=Path(out_dir),
        run_key=run_key,
        summary_extra={
            "model_path": str(model_path),
            "revision": revision,
            "data": str(data),
            "n_train": len(train_pairs),
            "n_eval": len(eval_pairs),
            "leakage_probe": gate,
        },
        config_slice=config_slice,
        inputs=inputs,
        phases=phases,
        callbacks=callbacks,
    )


def pretrain(
    *,
    corpus: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    arch: dict | None,
    params: dict | None,
    out_dir: str | os.PathLike,
    config_slice: Any = None,
) -> dict[str, Any]:
    """Causal pretraining of a fresh tiny Ministral-3 (``tiny_ministral3_config(**arch)``) on ``corpus``."""
    from ablate.core import modeling

    phases = Phases()
    p = resolve_params(params, "pretrain")
    # built here, not loaded: the loader's backend checks, applied to the device it trains on
    modeling.check_attention_device(
        p["attn_implementation"], "cuda" if torch.cuda.is_available() else "cpu"
    )
    modeling.register_attention(p["attn_implementation"])
    tokenizer = modeling.load_tokenizer(tokenizer_dir)
    docs = load_corpus(corpus)
    blocks = pack_corpus(tokenizer, docs, p["max_seq_len"])
    n_eval = min(p["eval_size"], len(blocks) - 1)
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(p["seed"])).tolist()
    eval_blocks = [blocks[i] for i in sorted(order[:n_eval])]
    train_blocks = [blocks[i] for i in sorted(order[n_eval:])]
    arch = dict(arch or {})
    arch.setdefault("vocab_size", len(tokenizer))
    for key, tok_id in (
        ("bos_token_id", tokenizer.bos_token_id),
        ("eos_token_id", tokenizer.eos_token_id),
        ("pad_token_id", tokenizer.pad_token_id),
    ):
        arch.setdefault(key, tok_id)
    config = modeling.tiny_ministral3_config(**arch)
    config._attn_implementation = p["attn_implementation"]
    with phases("build_model"):
        # random init where it trains: on a GPU, not 3.4 B fp32 on the host (issue 16)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = modeling.build_tiny_model(config, seed=p["seed"], device=device)
        model.to(model_dtype(p))
    model.config.use_cache = False
    print(
        f"[pretrain] {len(docs)} documents -> {len(train_blocks)} train / {len(eval_blocks)} eval blocks "
        f"of {p['max_seq_len']} tokens; model {sum(t.numel() for t in model.parameters()) / 1e6:.1f} M params",
        flush=True,
    )
    as_examples = lambda bl: ExampleDataset([{"input_ids": b, "prompt_length": 0} for b in bl])  # noqa: E731
    run_key = {
        "kind": "pretrain",
        "corpus": str(corpus),
        "tokenizer": str(tokenizer_dir),
        "arch": arch,
        "params": p,
    }
    return train_run(
        kind="pretrain",
        model=model,
        tokenizer=tokenizer,
        train_dataset=as_examples(train_blocks),
        eval_dataset=as_examples(eval_blocks),
        policy="causal",
        params=p,
        out_dir=Path(out_dir),
        run_key=run_key,
        summary_extra={
            "corpus": str(corpus),
            "arch": arch,
            "n_train_blocks": len(train_blocks),
            "n_eval_blocks": len(eval_blocks),
            "leakage_probe": None,
        },
        config_slice=config_slice,
        inputs={"corpus": corpus, "tokenizer": tokenizer_dir},
        phases=phases,
    )
