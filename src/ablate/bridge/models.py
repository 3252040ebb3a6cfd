"""The two tiny causal LMs of the embedded bridge study, their tokenizers, and KV-cache sizes.

Their BPE tokenizers are trained here on the corpus: the real ones need ``sentencepiece`` or cost
too much (docs/bridge.md, "The embedded default"). A model is built where it trains (a random 8 B
model on the GPU in seconds, not fp32 on the host).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ablate.bridge.families import (
    CONFIG_DEFAULTS,
    PRETRAIN,
    ModelSetupError,
    family_arch,
)
from ablate.core.outputs import hub_revisions, model_card
from ablate.core.training.data import load_corpus

_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def train_tokenizer(texts: list[str], spec: dict[str, Any], out_dir: str | os.PathLike):
    """Train a BPE tokenizer (``spec``: type, vocab_size) on ``texts``; save an HF folder; load it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from ablate.core.models.modeling import load_tokenizer

    kind = spec["type"]
    if kind == "sentencepiece_bpe":
        tk = Tokenizer(models.BPE(unk_token="<unk>"))
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Metaspace(), pre_tokenizers.Digits(individual_digits=True)]
        )
        tk.decoder = decoders.Metaspace()
        alphabet: list[str] = []
    elif kind == "byte_bpe":
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        raise ModelSetupError(
            f"unknown tokenizer type {kind!r}; choose sentencepiece_bpe or byte_bpe"
        )
    trainer = trainers.BpeTrainer(
        vocab_size=int(spec["vocab_size"]),
        special_tokens=_SPECIALS,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer=trainer)
    if spec.get("pad_to_size"):
        tk = _pad_vocab(tk, int(spec["vocab_size"]))
    bos = tk.token_to_id("<s>")
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tok.padding_side = "right"
    tok.save_pretrained(str(out_dir))
    return load_tokenizer(out_dir)


def _pad_vocab(tk, size: int):
    """``tk`` filled up to ``size`` pieces by ``<unused_N>`` (id N), pieces no text encodes to."""
    import json

    from tokenizers import Tokenizer

    state = json.loads(tk.to_str())
    vocab = state["model"]["vocab"]
    for i in range(len(vocab), size):
        vocab[f"<unused_{i}>"] = i
    return Tokenizer.from_str(json.dumps(state))


def build_config(family: str, arch: dict[str, Any], tokenizer):
    """The family's transformers config: ``arch`` over :data:`CONFIG_DEFAULTS`."""
    from transformers import LlamaConfig, MistralConfig

    fields = {k: v for k, v in arch.items() if k != "tokenizer"}
    if "vocab_size" in fields:
        raise ModelSetupError(
            "arch.vocab_size: the vocabulary is the tokenizer's; set arch.tokenizer.vocab_size "
            "(with arch.tokenizer.pad_to_size: true for exactly that many rows)"
        )
    common = {
        **CONFIG_DEFAULTS,
        **fields,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if family == "mistral":
        return MistralConfig(**{"sliding_window": None, **common})
    return LlamaConfig(**common)


def prepare_model(
    *,
    family: str,
    arch: dict | None,
    pretrain: dict | None,
    corpus: str | os.PathLike,
    out_dir: str | os.PathLike,
    config_slice: Any = None,
) -> dict[str, Any]:
    """Train the tokenizer, build and pretrain the tiny model; returns the pretraining summary."""
    from ablate.core.outputs.phases import Phases
    from ablate.core.training.driver import TrainRun
    from ablate.core.training.params import resolve_params
    from ablate.core.training.pretraining import pretrain as pretrain_model
    from ablate.core.training.recipe import Recipe

    started = time.time()
    out = Path(out_dir)
    a = family_arch(family, arch)
    p = resolve_params({**PRETRAIN, **(pretrain or {})}, "pretrain")
    tokenizer = train_tokenizer(load_corpus(corpus), a["tokenizer"], out / "tokenizer")
    print(
        f"[prepare_model {family}] tokenizer {a['tokenizer']['type']} ({len(tokenizer)} pieces)",
        flush=True,
    )
    run = TrainRun(
        kind="pretrain",
        recipe=Recipe(p),
        out_dir=out,
        run_key={"kind": "bridge_pretrain", "family": family, "arch": a, "params": p.as_dict()},
        summary_extra={"family": family, "arch": a, "corpus": str(corpus)},
        config_slice=config_slice,
        inputs={"corpus": corpus},
        phases=Phases(started),
        # the key its summary and manifest have had since it ran through the mask study's trainer
        record={"policy": "causal"},
    )
    config = build_config(family, a, tokenizer)
    summary = pretrain_model(run, config=config, tokenizer=tokenizer, corpus=corpus)
    model_card.write(
        out / "card.json",
        source="embedded",
        model=out / "final",
        tokenizer=out / "final",
        config_slice=config_slice,
        extra={"family": family, "pretrain_run_id": summary["provenance"]["run_id"]},
        started=started,
    )
    return summary


def check_pinned(cards: dict[str, Any], identity: dict[str, Any] | None) -> None:
    """Each hub model's card records the commit the job's identity names."""
    from ablate.bridge.layout import PATTERNS

    for key, card in cards.items():
        revision = ((identity or {}).get(key) or {}).get("revision")
        if revision and not isinstance(card, dict):
            results = Path(card).parents[len(Path(PATTERNS["card"]).parts) - 1]
            lock = hub_revisions.lock_path(results)
            model_card.check_revision(model_card.read(card), revision, lock)


def _located(card: dict | str | os.PathLike) -> tuple[str, str | None, str]:
    """(model path, revision, tokenizer path) of a model card (a card dict or its path)."""
    if not isinstance(card, dict):
        card = model_card.read(card)
    path, revision = model_card.locate(card)
    return path, revision, card["tokenizer"] if Path(card["tokenizer"]).exists() else path


def load(card: dict | str | os.PathLike, *, dtype: str | torch.dtype = "float32", device=None):
    """(model, tokenizer) of a model card (a card dict or its path); frozen, eval mode."""
    from ablate.core.models.modeling import load_causal_lm, load_tokenizer

    path, revision, tok_path = _located(card)
    tokenizer = load_tokenizer(tok_path, revision=revision)
    model = load_causal_lm(path, revision=revision, dtype=dtype, device=device)
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer


def load_config(card: dict | str | os.PathLike):
    """(a namespace holding the model's ``config``, tokenizer): no weights loaded."""
    from transformers import AutoConfig

    from ablate.core.models.modeling import load_tokenizer

    path, revision, tok_path = _located(card)
    config = AutoConfig.from_pretrained(path, revision=revision)
    return SimpleNamespace(config=config), load_tokenizer(tok_path, revision=revision)


def check_distinct_tokenizers(source_tok, target_tok) -> None:
    """The study bridges two tokenizers: the same vocabulary on both sides is a config error."""
    if source_tok.get_vocab() == target_tok.get_vocab():
        raise ModelSetupError(
            "bridge.source and bridge.target use the same tokenizer (identical vocabularies): "
            "the study needs a model pair with two different tokenizers"
        )


def kv_cache_mb_per_token(config, dtype: str | torch.dtype = "bfloat16") -> float:
    """KV-cache MiB per token: 2 (K, V) x layers x kv_heads x head_dim x bytes, from the config."""
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    nbytes = torch.empty((), dtype=dtype).element_size()
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * nbytes / 2**20
