"""transformers' private names the package uses, pinned to transformers 5.23.0 (pyproject.toml).

1. ``PretrainedConfig._attn_implementation`` (:func:`attn_implementation`): the attention
   implementation a model runs now, which ``set_attn_implementation`` changes. The config
   property has no public getter; the mask policies check it before building their kwargs
   (``mask/masks.py``, ``mask/training/packing.py``) and the decode engine before swapping in its
   own (``core/models/generation.py``). It is only read: a model is given one through the public
   ``from_config(attn_implementation=...)``, ``from_pretrained(attn_implementation=...)`` and
   ``set_attn_implementation``. Test: ``test_hf.py::test_attn_implementation_follows_the_model``.
2. ``PreTrainedModel._no_split_modules`` (:func:`no_split_modules`): the class names of a model's
   decoder layers, which accelerate's FSDP plugin reads to wrap one layer per unit, as
   ``core/training/sharding.py`` does. Test: ``test_hf.py::test_no_split_modules_names_the_layers``.

3. A workaround, not a private name: ``PreTrainedTokenizerBase.save_pretrained`` of a
   ``TokenizersBackend`` tokenizer leaves ``added_tokens_decoder`` out of tokenizer_config.json,
   and ``from_pretrained`` of a folder without it takes its legacy path, which parses the whole
   tokenizer.json again in Python for its ``added_tokens`` (after the Rust parse): 0.7 s of every
   load of the 17 MB Tekken tokenizer (2-core AMD EPYC), in every job that loads a model.
   :func:`save_tokenizer` writes the decoder back, as transformers' other backends save it; the
   loaded tokenizer is the same. Callers: every tokenizer save (``mask/tiny.py``,
   ``core/training/saving.py``, ``core/outputs/checkpoint_integrity.py``). Test:
   ``test_hf.py::test_a_saved_tokenizer_loads_without_a_second_parse``, which fails once
   transformers saves the decoder itself: then this can go.

The module imports nothing from transformers: it is read where a model already exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: the file transformers writes a tokenizer's settings to (touch 3)
TOKENIZER_CONFIG = "tokenizer_config.json"


def attn_implementation(config: Any) -> str | None:
    """The attention implementation a model of ``config`` runs now (touch 1); None for a config
    without one."""
    return getattr(config, "_attn_implementation", None)


def no_split_modules(model: Any) -> set[str]:
    """The class names of ``model``'s blocks that must not be split across shards: its decoder
    layers (touch 2)."""
    return set(getattr(model, "_no_split_modules", None) or ())


def save_tokenizer(tokenizer: Any, out: str | Path) -> None:
    """``tokenizer.save_pretrained(out)``, with its ``added_tokens_decoder`` in the saved config
    (touch 3), so that a load reads tokenizer.json once; no tokenizer (None): nothing."""
    if tokenizer is None:
        return
    tokenizer.save_pretrained(out)
    # the backend whose save drops it (transformers' own test of the class, by name)
    if not any(c.__name__ == "TokenizersBackend" for c in type(tokenizer).__mro__):
        return
    path = Path(out) / TOKENIZER_CONFIG
    config = json.loads(path.read_text())
    if "added_tokens_decoder" not in config:
        config["added_tokens_decoder"] = {
            str(i): token.__getstate__() for i, token in tokenizer.added_tokens_decoder.items()
        }
        path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
