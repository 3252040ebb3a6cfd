"""The leakage gate's parameters and error: a finetune that runs the probe itself (``ablate train``
without ``--probe-result``; the pipeline runs the probe as its own rule) takes them beside the
core's ``finetune_params`` (:mod:`ablate.core.training.params`)."""

from __future__ import annotations

from typing import Any

from ablate.core import config
from ablate.core.training import params as core_params
from ablate.core.training.params import TrainingError

#: training key -> the key of the config schema's ``leakage`` section, whose defaults and bounds
#: they take.
PROBE_PARAMS = {
    "probe_size": "n_pairs",
    "probe_batch_size": "batch_size",
    "probe_threshold": "threshold",
}


class LeakageGateError(TrainingError):
    pass


def params_schema(kind: str) -> dict[str, Any]:
    """This study's schema of ``kind`` (the core's with its keys); a finetune's with the probe keys."""
    schema = core_params.params_schema(kind, "mask_")
    if kind == "finetune":
        leakage = config.subschema("properties/mask/properties/leakage")["properties"]
        schema["properties"].update({k: leakage[v] for k, v in PROBE_PARAMS.items()})
    return schema


def defaults(kind: str) -> dict[str, Any]:
    """Every parameter's default of a mask study's ``finetune`` (probe keys too) or ``pretrain``."""
    return core_params.defaults(kind, params_schema(kind))


def resolve_params(params: dict | None, kind: str) -> dict[str, Any]:
    """:func:`ablate.core.training.params.resolve_params` over :func:`params_schema`."""
    return core_params.resolve_params(params, kind, params_schema(kind))


def check_params(params: dict[str, Any], kind: str) -> dict[str, Any]:
    """:func:`ablate.core.training.params.check_params` over :func:`params_schema`; the probe
    keys may be absent (the pipeline runs the probe as its own rule)."""
    return core_params.check_params(params, kind, params_schema(kind), tuple(PROBE_PARAMS))
