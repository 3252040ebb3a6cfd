"""The registry of studies, outside the core: each study's package and where the core finds a
study's side (``ablate.core`` names no study; it reads this registry). No torch: the Snakefile,
STATUS and the planner import it.

A study's package may declare ``ATTENTION_BACKENDS`` (attn_implementation -> the module whose
import registers it with transformers); the model loader imports that module when asked for the
backend, so a fresh process loads with it without knowing where it lives.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

#: study (config key ``studies``) -> its package
STUDIES = {"mask": "ablate.mask", "bridge": "ablate.bridge"}


def side(study: str, part: str) -> ModuleType:
    """A study's module ``part``: ``status`` (STATUS rows) or ``plan`` (the planner's jobs)."""
    if study not in STUDIES:
        raise KeyError(f"unknown study {study!r} (known: {', '.join(STUDIES)})")
    return import_module(f"{STUDIES[study]}.{part}")


def attention_backends() -> dict[str, str]:
    """Every study's attention backends: attn_implementation -> the module that registers it."""
    out: dict[str, str] = {}
    for package in STUDIES.values():
        out.update(getattr(import_module(package), "ATTENTION_BACKENDS", {}))
    return out
