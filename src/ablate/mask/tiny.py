"""The embedded tiny Ministral-3: the real Tekken tokenizer shipped by the mistral-common package
(so no hub access is ever needed), the scaled-down config and its random-init builder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ablate.core.modeling import ModelLoadError, load_tokenizer

TEKKEN_FILE = "tekken_240911.json"  # the Tekken version of the Ministral-3 / Mistral-Nemo family
SPECIAL_TOKENS = dict(bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def mistral_common_data_file(name: str = TEKKEN_FILE) -> Path:
    import mistral_common

    path = Path(mistral_common.__file__).parent / "data" / name
    if not path.exists():
        raise ModelLoadError(f"mistral-common ships no tokenizer file {name!r} ({path})")
    return path


def prepare_tekken_tokenizer(out_dir: str | os.PathLike, tekken_file: str = TEKKEN_FILE):
    """Write a loadable HF tokenizer folder from a Tekken file of the mistral-common package.

    AutoTokenizer converts ``tekken.json`` offline but sets no special tokens and adds no BOS;
    the real checkpoints prepend ``<s>``, so the saved tokenizer does too.
    """
    from tokenizers import processors
    from transformers import AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(mistral_common_data_file(tekken_file), out / "tekken.json")
    tok = AutoTokenizer.from_pretrained(out)
    tok.add_special_tokens(SPECIAL_TOKENS)
    bos = SPECIAL_TOKENS["bos_token"]
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
    tok.save_pretrained(out)
    (out / "tekken.json").unlink()  # tokenizer.json now holds everything; one source of truth
    return load_tokenizer(out)


#: The Ministral-3-3B text model's shape (mistralai/Ministral-3-3B-Instruct-2512 config.json):
#: 3.43 B parameters with tied embeddings; the bench scripts build it random-init from this.
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


def tiny_ministral3_config(vocab_size: int = 131072, **overrides: Any):
    """A Ministral-3 text config of the real architecture, scaled down: the sizes of the config
    schema's ``mask.model.embedded.arch`` defaults, then ``overrides``. ``vocab_size`` defaults to
    Tekken's (the pipeline passes its tokenizer's)."""
    from transformers import Ministral3Config

    from ablate.core.config import schema_defaults

    params: dict[str, Any] = dict(
        **schema_defaults("$defs/embedded_model/properties/arch"),
        vocab_size=vocab_size,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=11,
        rope_parameters={
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
        },
    )
    params.update(overrides)
    return Ministral3Config(**params)


def build_tiny_model(config, seed: int = 0, device: str | torch.device = "cpu"):
    """A randomly initialised model, built on ``device`` (a GPU builds and initialises 3.4 B
    parameters in seconds; the host took minutes in fp32). The same seed gives the same weights
    on the same kind of device only: CPU and CUDA random streams differ."""
    from transformers import Ministral3ForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        return Ministral3ForCausalLM(config)
