"""Bridge grid-entry parameters: defaults from the study's ``params.schema.yaml`` (package data; the
one place).

Torch-free: the Snakefile resolves every grid entry through :func:`resolve` at parse time.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Literal

from ablate.core import config


class BridgeConfigError(ValueError):
    pass


#: Keys added after runs were recorded: at their default they are left out of a run's params
#: (:func:`recorded`: its identity, run id and rule params), so those runs keep their ids and
#: Snakemake sees no changed params; :func:`check` fills them back in for the job.
LATE_KEYS = (
    "infonce_group",
    "nll_labels",
    "kl_reduction",
    "kl_teacher",
    "infonce_prompt",
    "prompt_align",
    "kl_rows",
    "padding",
    "rms_detach",
)


class TranslatorConfigError(ValueError):
    pass


def validate_arch(arch: dict[str, Any], where: str = "bridge") -> None:
    """Clear errors naming the config key (``where`` is the key path of the param block)."""
    for key in ("K", "depth", "bottleneck", "heads"):
        value = arch.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TranslatorConfigError(f"{where}.{key} must be an integer >= 1, got {value!r}")
    if arch["bottleneck"] % arch["heads"]:
        raise TranslatorConfigError(
            f"{where}.bottleneck = {arch['bottleneck']} is not divisible by {where}.heads = "
            f"{arch['heads']}: attention splits the bottleneck width evenly over the heads"
        )
    if not 0.0 <= float(arch.get("dropout", 0.0)) < 1.0:
        raise TranslatorConfigError(f"{where}.dropout must be in [0, 1), got {arch['dropout']!r}")


@functools.cache
def schema() -> dict[str, Any]:
    import yaml

    path = config.schema_path("ablate.bridge", "params")
    if not path.exists():
        raise BridgeConfigError(f"the bridge parameter schema {path} is missing")
    # its $refs (a seed's range) point into the pipeline config schema's $defs, the one place
    return {**yaml.safe_load(path.read_text()), "$defs": config.subschema("$defs")["$defs"]}


def defaults() -> dict[str, Any]:
    return {k: v["default"] for k, v in schema()["properties"].items()}


def resolve(params: dict[str, Any] | None, where: str = "bridge") -> dict[str, Any]:
    """Defaults overlaid with ``params``, validated, canonical; errors name ``where.<key>``."""
    p = dict(params or {})
    unknown = sorted(set(p) - set(schema()["properties"]))
    if unknown:
        raise BridgeConfigError(
            f"unknown bridge parameter(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"known: {', '.join(sorted(schema()['properties']))}"
        )
    out = {**defaults(), **p}
    errors = sorted(config.validator(schema()).iter_errors(out), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        key = ".".join(str(x) for x in e.path)
        raise BridgeConfigError(f"{where}.{key}: {config.error_words(e)}")
    out = canonical(out)
    try:
        validate_arch(out, where)
    except TranslatorConfigError as exc:
        raise BridgeConfigError(str(exc)) from exc
    group = out["infonce_group"]
    if group is not None and out["batch_size"] % group:
        raise BridgeConfigError(
            f"{where}.infonce_group = {group} does not divide {where}.batch_size = "
            f"{out['batch_size']}: InfoNCE splits each process's batch into groups of that size"
        )
    return out


def recorded(p: dict[str, Any]) -> dict[str, Any]:
    """Resolved params as a run records them: each of :data:`LATE_KEYS` at its default left out."""
    return {k: v for k, v in p.items() if k not in LATE_KEYS or v != defaults()[k]}


def check(p: dict[str, Any], where: str = "bridge") -> BridgeParams:
    """Params as a job takes them (resolved at parse time, maybe :func:`recorded`), checked:
    every key but the late ones, valid, canonical; returned complete and typed."""
    missing = sorted(set(schema()["properties"]) - set(p) - set(LATE_KEYS))
    if missing:
        raise BridgeConfigError(
            f"{where}: parameters without {', '.join(missing)}: a job takes them resolved "
            f"(ablate.bridge.params.resolve, where the config is parsed)"
        )
    full = resolve(p, where)
    if recorded(full) != recorded(p):
        raise BridgeConfigError(f"{where}: parameters not in their canonical spelling")
    return _typed(full)


def _typed(p: dict[str, Any]) -> BridgeParams:
    """Params the schema passed, typed (the one constructor call)."""
    unknown = set(p) - set(BridgeParams.keys())
    if unknown:  # the schema has a key the type lacks: the type must grow a field
        raise BridgeConfigError(
            f"BridgeParams has no field for {', '.join(sorted(unknown))}: add it "
            f"(ablate.bridge.params, docs/bridge.md)"
        )
    return BridgeParams(**p)


@dataclass(frozen=True, kw_only=True)
class BridgeParams:
    """A bridge job's params, built only by :func:`check`. ``params.schema.yaml`` is the one
    statement of keys, bounds and defaults: a field has no default of its own
    (tests/bridge/test_params.py holds the two together)."""

    # data
    dataset: Literal["gsm8k", "hotpotqa"]
    seed: int
    max_source_len: int
    max_prompt_len: int
    # translator
    K: int
    depth: int
    bottleneck: int
    heads: int
    dropout: float
    rope_projection: bool
    # optimisation
    lr: float
    weight_decay: float
    warmup_steps: int
    steps: int
    batch_size: int
    infonce_group: int | None
    gate_lr_multiplier: float
    grad_clip: float
    model_dtype: Literal["auto", "float32", "bfloat16"]
    # losses
    kl_weight: float
    kl_positions: int
    kl_after_warmup: bool
    infonce_weight: float
    infonce_temperature: float
    prompt_align_weight: float
    nll_labels: Literal["answer", "original"]
    kl_reduction: Literal["mean", "batchmean"]
    kl_teacher: Literal["full", "prompt_only", "answer_only"]
    infonce_prompt: Literal["full", "first_k"]
    prompt_align: Literal["pooled", "per_position"]
    kl_rows: Literal["answer", "original"]
    padding: Literal["right", "left"]
    rms_detach: bool
    # evaluation and stopping
    eval_every: int
    eval_size: int
    eval_batch_size: int
    max_new_tokens: int
    hygiene: bool
    early_stopping: bool
    patience: int
    restore_best: bool
    log_every: int

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def as_dict(self) -> dict[str, Any]:
        """The plain dict it was built from (what records, run keys and summaries hold)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunSpec:
    """A ``bridge_train`` or ``bridge_infer`` job as its rule passes it (``RunSpec(**params)``)."""

    run_id: str
    params: dict[str, Any]
    kind: str
    identity: Any = None
    where: str = "bridge"
    source_role: str = "source"
    target_role: str = "target"
    processes: int = 1
    timed_samples: int | None = None

    @classmethod
    def parse(cls, run_id: str, params: dict[str, Any] | None, kind: str, **keys: Any) -> RunSpec:
        """A spec from partial ``params``: the one merge with the defaults (:func:`resolve`)."""
        return cls(run_id, resolve(params, keys.get("where", "bridge")), kind, **keys)

    def record_slice(self) -> Any:
        """The config slice its record holds."""
        return self.identity if self.identity is not None else self.params


def canonical(p: dict[str, Any]) -> dict[str, Any]:
    """Valid params in one spelling (a ``number`` a float, switches that cannot act reset)."""
    from ablate.bridge import switches

    props = schema()["properties"]
    out = dict(p)
    for key, value in out.items():
        kind = props[key].get("type")
        if kind == "number" and not isinstance(value, bool):
            out[key] = float(value)
    return switches.canonical(_typed(out), _typed(defaults())).as_dict()
