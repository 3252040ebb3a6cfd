"""The mask study's training params, :class:`MaskParams`: the core's ``finetune_params`` /
``pretrain_params`` (:mod:`ablate.core.training.params`) with the study's keys, and the leakage
probe's, which a finetune that runs the probe itself takes (``ablate train`` without
``--probe-result``; the pipeline runs the probe as its own rule)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ablate.core import config
from ablate.core.training import params as core_params
from ablate.core.training.params import TrainParams

#: training key -> the ``leakage`` schema key whose default and bounds it takes.
PROBE_PARAMS = {
    "probe_size": "n_pairs",
    "probe_batch_size": "batch_size",
    "probe_threshold": "threshold",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class MaskParams(TrainParams):
    """The core's params and this study's keys; a subclass rather than an ``extra`` mapping, so
    its keys are typed attributes the schema test checks like the core's."""

    # this study's schema sets a default for both kinds: a required field
    attn_implementation: str = dataclasses.field()
    packing: bool
    packing_row_tokens: int
    # a finetune's only (None in a pretraining)
    sft_format: Literal["alpaca", "original"] | None = None
    # the library's probe (absent in the pipeline's finetune, which runs it as its own rule)
    probe_size: int | None = None
    probe_batch_size: int | None = None
    probe_threshold: float | None = None


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


def resolve_params(params: dict | None, kind: str) -> MaskParams:
    """:func:`ablate.core.training.params.resolve_params` over :func:`params_schema`."""
    return core_params.resolve_params(params, kind, params_schema(kind), MaskParams)


def check_params(params: dict[str, Any], kind: str) -> MaskParams:
    """:func:`ablate.core.training.params.check_params`, the probe keys optional."""
    return core_params.check_params(
        params, kind, params_schema(kind), tuple(PROBE_PARAMS), MaskParams
    )
