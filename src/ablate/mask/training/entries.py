"""Entry points: :func:`finetune` (SFT under a policy, leakage gate) and :func:`pretrain` (tiny
model), each a :func:`ablate.core.training.driver.train_run` with the policy's recipe."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ablate.core.config import sorted_tree
from ablate.core.outputs.phases import Phases
from ablate.core.training.driver import TrainRun, train_run
from ablate.core.training.params import model_dtype
from ablate.core.training.pretraining import pretrain as pretrain_model
from ablate.core.training.pretraining import training_device
from ablate.mask import families, masks, sft_data
from ablate.mask.training import gate
from ablate.mask.training.params import MaskParams, check_params, resolve_params
from ablate.mask.training.policy import recipe as policy_recipe


def _sft_examples(pairs: list[sft_data.TokenizedPair]) -> list[dict]:
    return [{"input_ids": p.input_ids, "prompt_length": p.prompt_length} for p in pairs]


def _policy_run(policy: str, kind: str, params: MaskParams, tokenizer) -> dict[str, Any]:
    """train_run's study keys for a run under ``policy``: log label, recorded keys, recipe."""
    return {
        "label": f"{kind} {policy}" if kind == "finetune" else kind,
        "record": {"policy": policy},
        "recipe": policy_recipe(policy, params, tokenizer.pad_token_id),
    }


@dataclass(frozen=True)
class FinetuneSpec:
    """A finetune's config slice (:func:`ablate.mask.layout.finetune_slice`), one field per key;
    ``params`` resolved (every key). The pipeline builds it as ``FinetuneSpec(**slice)``, a
    library caller with partial params from :meth:`parse`."""

    policy: str
    params: dict[str, Any]
    allow_leakage: bool = False
    variant: str | None = None
    stage: int | None = None

    @classmethod
    def parse(
        cls, policy: str, params: dict | None = None, allow_leakage: bool = False
    ) -> FinetuneSpec:
        """A spec from partial ``params``: the one merge with the schema's defaults."""
        return cls(policy, resolve_params(params, "finetune").as_dict(), allow_leakage)

    def config_slice(self) -> dict[str, Any]:
        """The slice it records in its provenance: its fields, those set."""
        return sorted_tree({k: v for k, v in dataclasses.asdict(self).items() if v is not None})


def _sft_pairs(data, model_path, revision, p: MaskParams):
    """The tokenizer and the tokenized train / held-out pairs; the tokenizer loads before the
    model, so a model without one fails early."""
    from ablate.core.models.modeling import load_tokenizer

    rows = sft_data.load_rows(data)
    if p.eval_size:
        train_rows, eval_rows = sft_data.split_rows(rows, p.eval_size, p.seed)
    else:
        train_rows, eval_rows = rows, []
    if why := sft_data.step_error(p.batch_size, p.grad_accum, len(train_rows)):
        raise sft_data.SFTDataError(why)  # a hub dataset's rows: known only now
    tokenizer = load_tokenizer(model_path, revision=revision)
    fmt = p.sft_format
    train_pairs = sft_data.tokenize_rows(tokenizer, train_rows, p.max_seq_len, fmt)
    eval_pairs = sft_data.tokenize_rows(tokenizer, eval_rows, p.max_seq_len, fmt)
    return tokenizer, train_pairs, eval_pairs


def finetune(
    spec: FinetuneSpec,
    *,
    model_path: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    revision: str | None = None,
    probe_result: dict | None = None,
    reporters: tuple = (),
) -> dict[str, Any]:
    """Full-weight SFT of ``model_path`` on the rows of ``data`` as ``spec`` says, into
    ``out_dir`` (``final/``, ``summary.json``; a rerun resumes from the last checkpoint). A
    leaking policy not allowed is a :class:`~ablate.mask.training.gate.LeakageGateError` before
    training."""
    phases = Phases()
    policy = spec.policy
    masks.check_policy(policy)
    p = check_params(spec.params, "finetune")
    if probe_result is not None:  # needs neither data nor model: a refusal before their loads
        with phases("leakage_gate"):
            verdict = gate.check(None, [], policy, spec.allow_leakage, p, probe_result)
    with phases("data"):
        tokenizer, train_pairs, eval_pairs = _sft_pairs(data, model_path, revision, p)
    print(
        f"[finetune {policy}] {len(train_pairs)} train / {len(eval_pairs)} eval pairs from {data}; "
        f"loading {model_path}",
        flush=True,
    )
    from ablate.core.models.modeling import load_causal_lm

    with phases("load_model"):  # the manifest's hashes checked while the weights load
        model = load_causal_lm(
            model_path,
            revision=revision,
            dtype=model_dtype(p),
            attn_implementation=p.attn_implementation,
            device="cuda" if torch.cuda.is_available() else None,
            config_check=families.check_config,  # a family the mask audit has not proven: refused
        )
    if probe_result is None:  # none given: the gate probes the model on held-out pairs
        with phases("leakage_gate"):
            verdict = gate.check(
                model, eval_pairs or train_pairs, policy, spec.allow_leakage, p, None
            )
    model.config.use_cache = False
    inputs = {"model": model_path}
    if Path(data).exists():
        inputs["data"] = data
    source = {"model_path": str(model_path), "revision": revision, "data": str(data)}
    run = TrainRun(
        kind="finetune",
        out_dir=Path(out_dir),
        run_key={
            "kind": "finetune",
            **source,
            "policy": policy,
            "params": p.as_dict(),
            "allow_leakage": bool(spec.allow_leakage),
        },
        summary_extra={
            **source,
            "n_train": len(train_pairs),
            "n_eval": len(eval_pairs),
            # the planner's tokens per pair (ablate.mask.plan), in place of max_seq_len
            "lengths": sft_data.length_stats(train_pairs, p.max_seq_len),
            "leakage_probe": verdict,
        },
        config_slice=spec.config_slice(),
        inputs=inputs,
        phases=phases,
        **_policy_run(policy, "finetune", p, tokenizer),
    )
    return train_run(
        run,
        model=model,
        tokenizer=tokenizer,
        train_dataset=_sft_examples(train_pairs),
        eval_dataset=_sft_examples(eval_pairs),
        reporters=reporters,
    )


def pretrain(
    *,
    corpus: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    arch: dict | None,
    params: dict | None,
    out_dir: str | os.PathLike,
    config_slice: Any = None,
    family: str = "ministral3",
) -> dict[str, Any]:
    """Causal pretraining of a fresh tiny model of ``family`` on ``corpus``."""
    from ablate.core.models.modeling import load_tokenizer
    from ablate.mask import tiny

    phases = Phases()
    p = check_params(params, "pretrain")
    training_device(p)  # an attention refused on this device, before any read
    tokenizer = load_tokenizer(tokenizer_dir)
    arch = dict(arch or {})
    arch.setdefault("vocab_size", len(tokenizer))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        arch.setdefault(key, getattr(tokenizer, key))
    run = TrainRun(
        kind="pretrain",
        out_dir=Path(out_dir),
        run_key={
            "kind": "pretrain",
            "corpus": str(corpus),
            "tokenizer": str(tokenizer_dir),
            "family": family,
            "arch": arch,
            "params": p.as_dict(),
        },
        summary_extra={
            "corpus": str(corpus),
            "family": family,
            "arch": arch,
            "leakage_probe": None,
        },
        config_slice=config_slice,
        inputs={"corpus": corpus, "tokenizer": tokenizer_dir},
        phases=phases,
        **_policy_run("causal", "pretrain", p, tokenizer),
    )
    config = tiny.tiny_config(family, **arch)
    return pretrain_model(run, config=config, tokenizer=tokenizer, corpus=corpus)
