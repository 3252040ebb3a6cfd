"""``pretrain``: a fresh tiny causal LM trained on a text corpus, the one pretraining of both
studies. A study brings the model's config, its tokenizer and the run
(:class:`~.driver.TrainRun`); the corpus's blocks, the held-out split, the model's build and the
training are this module's.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import torch

from ablate.core.models import modeling
from ablate.core.training.data import load_corpus, pack_corpus
from ablate.core.training.driver import TrainRun, train_run
from ablate.core.training.params import TrainParams, model_dtype


def random_model(
    config,
    seed: int,
    device: str | torch.device = "cpu",
    attn_implementation: str | None = None,
    dtype: torch.dtype | None = None,
):
    """A randomly initialised causal LM of ``config`` seeded by ``seed``, built on ``device``
    (CPU and CUDA random streams differ, so a seed's weights do too)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    kw = {} if dtype is None else {"dtype": dtype}
    if attn_implementation is not None:  # passed as None, transformers drops the config's own
        kw["attn_implementation"] = attn_implementation
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, **kw)


def build_model(config, params: TrainParams, device: str | torch.device):
    """:func:`random_model` as a pretraining's ``params`` set it."""
    model = random_model(
        config, params.seed, device, params.attn_implementation, model_dtype(params)
    )
    model.config.use_cache = False
    return model


def blocks_split(tokenizer, corpus: str | os.PathLike, params: TrainParams):
    """(train, held-out) datasets of ``corpus`` packed into ``max_seq_len`` blocks: ``eval_size``
    blocks (at most all but one) drawn by ``seed``, each set in corpus order."""
    blocks = pack_corpus(tokenizer, load_corpus(corpus), params.max_seq_len)
    n_eval = min(params.eval_size, len(blocks) - 1)
    gen = torch.Generator().manual_seed(params.seed)
    order = torch.randperm(len(blocks), generator=gen).tolist()

    def examples(idx: list[int]) -> list[dict]:
        return [{"input_ids": blocks[i], "prompt_length": 0} for i in sorted(idx)]

    return examples(order[n_eval:]), examples(order[:n_eval])


def training_device(params: TrainParams) -> str:
    """The device a pretraining trains on, its ``attn_implementation`` checked for it and
    registered (the model is built, not loaded: the loader's checks, applied here)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    modeling.check_attention_device(params.attn_implementation, device)
    modeling.register_attention(params.attn_implementation)
    return device


def pretrain(run: TrainRun, *, config, tokenizer, corpus: str | os.PathLike) -> dict[str, Any]:
    """Pretrain a fresh model of ``config`` on ``corpus`` as ``run`` says; returns the summary
    (with the block counts and the model's size)."""
    p = run.recipe.params
    device = training_device(p)
    train, held_out = blocks_split(tokenizer, corpus, p)
    with run.phases("build_model"):
        model = build_model(config, p, device)
    n_params = sum(t.numel() for t in model.parameters())
    print(
        f"[{run.label or run.kind}] {len(train)} train / {len(held_out)} eval blocks of "
        f"{p.max_seq_len} tokens; model {n_params / 1e6:.2f} M params",
        flush=True,
    )
    sizes = {"n_train_blocks": len(train), "n_eval_blocks": len(held_out), "n_params": n_params}
    return train_run(
        replace(run, summary_extra={**run.summary_extra, **sizes}),
        model=model,
        tokenizer=tokenizer,
        train_dataset=train,
        eval_dataset=held_out,
    )
