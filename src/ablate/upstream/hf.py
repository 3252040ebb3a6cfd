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

The module imports nothing from transformers: it is read where a model already exists.
"""

from __future__ import annotations

from typing import Any


def attn_implementation(config: Any) -> str | None:
    """The attention implementation a model of ``config`` runs now (touch 1); None for a config
    without one."""
    return getattr(config, "_attn_implementation", None)


def no_split_modules(model: Any) -> set[str]:
    """The class names of ``model``'s blocks that must not be split across shards: its decoder
    layers (touch 2)."""
    return set(getattr(model, "_no_split_modules", None) or ())
