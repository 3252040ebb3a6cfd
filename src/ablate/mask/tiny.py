"""The embedded tiny model: the real Tekken tokenizer shipped by the mistral-common package (so
no hub access is ever needed), the scaled-down config of a family (Ministral-3 by default, or
Llama or Qwen2) and its random-init builder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

_TEKKEN_FILE = "tekken_240911.json"  # the Tekken version of the Ministral-3 / Mistral-Nemo family
_SPECIAL_TOKENS = dict(bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def prepare_tekken_tokenizer(out_dir: str | os.PathLike, tekken_file: str = _TEKKEN_FILE) -> None:
    """Write a loadable HF tokenizer folder from a Tekken file of the mistral-common package.

    AutoTokenizer converts ``tekken.json`` offline but sets no special tokens and adds no BOS; the
    real checkpoints prepend ``<s>``, so the saved tokenizer does too."""
    import mistral_common
    from tokenizers import processors
    from transformers import AutoTokenizer

    from ablate.core.models.modeling import ModelLoadError
    from ablate.upstream import hf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(mistral_common.__file__).parent / "data" / tekken_file
    if not path.exists():
        raise ModelLoadError(f"mistral-common ships no tokenizer file {tekken_file!r} ({path})")
    shutil.copy(path, out / "tekken.json")
    tok = AutoTokenizer.from_pretrained(out)
    tok.add_special_tokens(_SPECIAL_TOKENS)
    bos = _SPECIAL_TOKENS["bos_token"]
    tok.backend_tokenizer.post_processor = processors.Sequence(
        [
            tok.backend_tokenizer.post_processor,
            processors.TemplateProcessing(
                single=f"{bos} $A",
                pair=f"{bos} $A $B",
                special_tokens=[(bos, tok.convert_tokens_to_ids(bos))],
            ),
        ]
    )
    tok.padding_side = "right"
    hf.save_tokenizer(tok, out)
    (out / "tekken.json").unlink()  # tokenizer.json now holds everything; one source of truth


#: The Ministral-3-3B text model's shape (its config.json): the benches build it random-init.
MINISTRAL3_3B = dict(
    vocab_size=131072,
    hidden_size=3072,
    intermediate_size=9216,
    num_hidden_layers=26,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    tie_word_embeddings=True,
)


#: the architecture families ``mask.model.embedded.family`` can build (the schema's enum)
FAMILIES = ("ministral3", "llama", "qwen2")

#: Ministral-3's rope: yarn at factor 1 (so plain rope) with its llama-4 position scaling
_MINISTRAL3_ROPE = {
    "rope_type": "yarn",
    "rope_theta": 1_000_000.0,
    "factor": 1.0,
    "original_max_position_embeddings": 2048,
    "max_position_embeddings": 2048,
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
    "llama_4_scaling_beta": 0.1,
}


def tiny_params(family: str = "ministral3", vocab_size: int = 131072, **overrides: Any):
    """:func:`tiny_config`'s keys as a dict, without importing transformers (for the planner)."""
    from ablate.core.config import ConfigError, schema_defaults

    if family not in FAMILIES:
        raise ConfigError(
            f"mask.model.embedded.family: {family!r} is not one of {', '.join(FAMILIES)}"
        )
    params: dict[str, Any] = dict(
        **schema_defaults("$defs/embedded_model/properties/arch"),
        vocab_size=vocab_size,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=11,
    )
    params.update(overrides)
    if family == "ministral3":
        return {"model_type": family, "rope_parameters": dict(_MINISTRAL3_ROPE), **params}
    params.setdefault("rope_parameters", {"rope_type": "default", "rope_theta": 1_000_000.0})
    window = params.pop("sliding_window", None)
    if family == "llama":  # LlamaConfig has no window: a set one would be silently ignored
        if window is not None:
            raise ConfigError(
                f"mask.model.embedded.arch.sliding_window: {window}: the llama family has no "
                "sliding window; set it to null or use family ministral3 or qwen2"
            )
        return {"model_type": family, **params}
    # qwen2: its window covers the layers from max_window_layers on: 0 = all, as Ministral-3's
    return {
        "model_type": family,
        **params,
        "use_sliding_window": window is not None,
        "sliding_window": window,
        "max_window_layers": 0,
    }


def tiny_config(family: str = "ministral3", vocab_size: int = 131072, **overrides: Any):
    """The transformers config of a tiny model of ``family`` (an ``arch`` key it cannot honour:
    refused, never ignored)."""
    import transformers

    from ablate.core.config import ConfigError

    params = tiny_params(family, vocab_size, **overrides)
    config = transformers.AutoConfig.for_model(params.pop("model_type"), **params)
    if family == "qwen2":
        # Qwen2Config declares no head_dim; it keeps it, and the modeling reads it
        # (tests/mask/test_tiny.py builds one), where the config kept it.
        kept = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        if params.get("head_dim") not in (None, kept):
            raise ConfigError(
                f"mask.model.embedded.arch.head_dim: {params.get('head_dim')}: this transformers' "
                "Qwen2Config does not keep it; leave it at hidden_size / num_attention_heads"
            )
    return config


def tiny_ministral3_config(vocab_size: int = 131072, **overrides: Any):
    """:func:`tiny_config` of the ministral3 family (the benches' and tests' name)."""
    return tiny_config("ministral3", vocab_size, **overrides)
