"""Bridge grid-entry parameters: defaults from workflow/schemas/bridge.schema.yaml (the one place)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ablate.bridge import translator

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "bridge.schema.yaml"


class BridgeConfigError(ValueError):
    pass


@functools.cache
def schema() -> dict[str, Any]:
    import yaml

    if not SCHEMA.exists():
        raise BridgeConfigError(f"the bridge parameter schema {SCHEMA} is missing")
    return yaml.safe_load(SCHEMA.read_text())


def defaults() -> dict[str, Any]:
    return {k: v["default"] for k, v in schema()["properties"].items()}


def resolve(params: dict[str, Any] | None, where: str = "bridge") -> dict[str, Any]:
    """Defaults overlaid with ``params``, validated by the schema; errors name ``where.<key>``."""
    import jsonschema

    p = dict(params or {})
    unknown = sorted(set(p) - set(schema()["properties"]))
    if unknown:
        raise BridgeConfigError(
            f"unknown bridge parameter(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"known: {', '.join(sorted(schema()['properties']))}"
        )
    out = {**defaults(), **p}
    errors = sorted(
        jsonschema.Draft202012Validator(schema()).iter_errors(out), key=lambda e: list(e.path)
    )
    if errors:
        e = errors[0]
        key = ".".join(str(x) for x in e.path)
        raise BridgeConfigError(f"{where}.{key}: {e.message}")
    try:
        translator.validate_arch(out, where)
    except translator.TranslatorConfigError as exc:
        raise BridgeConfigError(str(exc)) from exc
    return out
