"""The architecture families whose mask policies are proven, and the refusal of every other one.

An architecture that builds its masks its own way can ignore a policy, and the model quietly stays
causal. So anything not in :data:`PROVEN` is refused, at parse time and before weights load
(docs/masks.md, "Proven families"). No torch, no transformers: the Snakefile imports this."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.core.config import ConfigError
from ablate.mask import PREFIX_SDPA

#: the test that proves a family: ``tests/mask/test_masks.py::test_family_proven[<model_type>]``
_AUDIT_TEST = "tests/mask/test_masks.py::test_family_proven"
#: the backends the audit runs in-process for every family
_IN_PROCESS = ("eager", "sdpa", PREFIX_SDPA)
#: where flex_attention is audited (a subprocess: its CPU compile is slow and once crashed)
FLEX = "flex_attention"


@dataclass(frozen=True)
class Family:
    """A proven family: the attention backends its audit covers, and why where it is fewer."""

    backends: tuple[str, ...] = _IN_PROCESS
    note: str = ""


#: model_type -> its proof (a test fails where tests/mask/test_masks.py's FAMILIES differ).
PROVEN: dict[str, Family] = {
    "ministral3": Family(
        (*_IN_PROCESS, FLEX), "the study model's text model; flex_attention in a subprocess"
    ),
    "mistral3": Family(
        (*_IN_PROCESS, FLEX),
        "vision-language wrapper: its ministral3 text model, loaded as modeling.load_causal_lm "
        "loads it; flex_attention through that text model's audit",
    ),
    "mistral": Family(
        (*_IN_PROCESS, FLEX), "plain and with a window; flex_attention in a subprocess (windowed)"
    ),
    "ministral": Family(note="alternating sliding and full layers"),
    "llama": Family(),
    "qwen2": Family(note="with and without its sliding-window layers"),
    "qwen3": Family(),
    "gemma2": Family(
        ("eager",),
        "alternating sliding and full layers, attention and final soft-capping; transformers "
        "refuses sdpa for Gemma 2 (soft-capping), so eager only",
    ),
    "gemma3_text": Family(note="alternating sliding and full layers, final soft-capping"),
    "phi3": Family(note="with and without a sliding window"),
    "olmo2": Family(),
}

#: config keys under which a family's own mask handling overrides the policy: key -> (refused
#: value, why)
OVERRIDING_KEYS = {
    "use_bidirectional_attention": (
        True,
        "the model builds bidirectional masks itself (Gemma 3's, EmbeddingGemma's), so the "
        "causal policy would not be causal",
    ),
    "is_causal": (
        False,
        "transformers turns every causal mask of such a config bidirectional, so the causal "
        "policy would not be causal",
    ),
}


class UnprovenFamilyError(ConfigError):
    """A model whose family (or backend) the mask audit has not proven."""


def proof(model_type: str) -> str:
    """The test node that proves ``model_type`` (run it with pytest)."""
    return f"{_AUDIT_TEST}[{model_type}]"


def check(model_type: str | None, backends: Iterable[str] = (), *, what: str = "the model") -> None:
    """Refuse an unproven ``model_type``, or a backend its audit does not cover: one line."""
    if model_type not in PROVEN:
        raise UnprovenFamilyError(
            f"{what} has model_type {model_type!r}, whose mask policies no audit has proven "
            f"(a policy could be silently ignored and the model stay causal): refused; to prove "
            f"it, add a tiny random {model_type} config to FAMILIES in tests/mask/test_masks.py "
            f"and the family to ablate.mask.families.PROVEN, then run pytest "
            f"'{proof(str(model_type))}' (docs/masks.md, 'Proven families')"
        )
    proven = PROVEN[model_type].backends
    for backend in backends:
        if backend not in proven:
            raise UnprovenFamilyError(
                f"{what} has model_type {model_type!r}, whose mask policies are proven on "
                f"{', '.join(proven)} only ({proof(model_type)}), not on attn_implementation "
                f"{backend!r}: refused; use one of those, or add {backend!r} to that family's "
                f"audit and to ablate.mask.families.PROVEN"
            )


def check_config(config: Any, attn_implementation: str | None = None, *, what: str = "") -> None:
    """Refuse a model config (transformers' or a config.json dict) the audit has not proven."""
    cfg = config if isinstance(config, Mapping) else config.to_dict()
    model_type = cfg.get("model_type")
    what = what or f"the model ({cfg.get('_name_or_path') or model_type})"
    check(model_type, [attn_implementation] if attn_implementation else (), what=what)
    for part in (cfg, cfg.get("text_config") or {}):
        for key, (bad, why) in OVERRIDING_KEYS.items():
            if key in part and part[key] == bad:
                raise UnprovenFamilyError(
                    f"{what} has {key}: {bad} in its config: refused, {why}; the audit "
                    f"({proof(str(model_type))}) proves configs without it"
                )


def read_model_config(
    path: str, revision: str | None = None, models: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], str] | None:
    """A model's config.json, offline, and where it came from; None when none is at hand."""
    local = Path(path) / "config.json"
    if local.is_file():
        return json.loads(local.read_text()), str(local)
    if Path(path).exists():
        return None  # a folder without config.json: the loader says what is wrong
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json", revision=revision)
    except Exception:  # not a valid repo id: the model card's rule says so
        cached = None
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text()), f"{path} config.json (local HF cache)"
    if models and path in models:
        return dict(models[path]["text_config"]), f"'models:' entry of {path}"
    return None


def study_backends(variants: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The attention backends the mask study's finetunes, evaluations and probe run on."""
    from ablate.mask.commands import PROBE_ATTN_IMPLEMENTATION

    found = [v["params"]["attn_implementation"] for v in variants.values() if "params" in v]
    return sorted({*found, "sdpa", PROBE_ATTN_IMPLEMENTATION})


def check_study(
    mask: Mapping[str, Any],
    backends: Iterable[str],
    *,
    measurements=None,
    where: str = "mask.model",
) -> None:
    """The mask study's base model, checked at parse time (``where``: its config key)."""
    model = mask["model"]
    if model["source"] == "embedded":
        embedded = model.get("embedded", {})
        pretrain = embedded.get("pretrain", {}).get("attn_implementation")
        backends = [*backends, *([pretrain] if pretrain else [])]
        family = embedded.get("family", "ministral3")  # tiny_config's families: their model_type
        check(family, backends, what=f"the embedded model ({where}.embedded.family: {family})")
        return
    models = None
    if measurements is not None and Path(measurements).is_file():
        import yaml

        models = (yaml.safe_load(Path(measurements).read_text()) or {}).get("models")
    found = read_model_config(model["path"], model.get("revision"), models)
    if found is None:
        return  # not readable offline: checked at load, before the weights are read
    cfg, source = found
    what = f"{where}.path {model['path']} ({source})"
    check_config(cfg, what=what)
    check(cfg.get("model_type"), backends, what=what)
