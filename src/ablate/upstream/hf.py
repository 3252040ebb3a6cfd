"""transformers' private names the package uses, pinned to transformers 5.23.0 (pyproject.toml).

1. ``PretrainedConfig._attn_implementation`` (:func:`attn_implementation`), which has no public
   getter; only read, by the mask policies (``mask/masks.py``, ``mask/training/packing.py``) and
   the decode engine (``core/models/generation.py``). Test:
   ``test_attn_implementation_follows_the_model``.
2. ``PreTrainedModel._no_split_modules`` (:func:`no_split_modules`), which FSDP wraps one per unit
   (``core/training/sharding.py``). Test: ``test_no_split_modules_names_the_layers``.
3. A workaround: ``save_pretrained`` of a ``TokenizersBackend`` tokenizer leaves
   ``added_tokens_decoder`` out, so ``from_pretrained`` parses tokenizer.json twice (0.7 s of
   every load of the 17 MB Tekken tokenizer); :func:`save_tokenizer`, for every tokenizer save
   (``mask/tiny.py``, ``core/training/saving.py``, ``core/outputs/checkpoint_integrity.py``),
   writes it back. Test: ``test_a_saved_tokenizer_loads_without_a_second_parse``, which fails
   once transformers saves it itself: then this can go.

The tests are in tests/upstream/test_hf.py. The module imports nothing from transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: the file transformers writes a tokenizer's settings to (touch 3)
TOKENIZER_CONFIG = "tokenizer_config.json"


def attn_implementation(config: Any) -> str | None:
    """The attention a model of ``config`` runs now (touch 1); None for a config without one."""
    return getattr(config, "_attn_implementation", None)


def no_split_modules(model: Any) -> set[str]:
    """The class names of ``model``'s blocks not to split across shards (touch 2)."""
    return set(getattr(model, "_no_split_modules", None) or ())


def save_tokenizer(tokenizer: Any, out: str | Path) -> None:
    """``tokenizer.save_pretrained(out)`` with its ``added_tokens_decoder`` (touch 3); None:
    nothing."""
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
