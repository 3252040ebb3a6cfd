"""Training parameters (keys, bounds and defaults: the config schema), their resolution, dtype rules,
errors."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from ablate.core import config

if TYPE_CHECKING:  # torch is imported where a dtype is made: the planner reads params without it
    import torch

IGNORE_INDEX = -100

KINDS = ("finetune", "pretrain")


def params_schema(kind: str, prefix: str = "") -> dict[str, Any]:
    """The closed schema of ``{prefix}{kind}_params`` (e.g. ``mask_finetune_params``), from the
    config schema."""
    if kind not in KINDS:
        raise TrainingConfigError(f"unknown kind of run {kind!r}; choose one of {', '.join(KINDS)}")
    return {**config.subschema(f"$defs/{prefix}{kind}_params"), "unevaluatedProperties": False}


def defaults(kind: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter's default for a ``finetune`` or ``pretrain`` run, or of ``schema``."""
    return config.defaults_of(schema or params_schema(kind))


class TrainingError(RuntimeError):
    pass


class TrainingConfigError(TrainingError, ValueError):
    pass


_Auto = Literal["auto"]
_Dtype = Literal["auto", "float32", "bfloat16", "float16"]
_T = TypeVar("_T", bound="LoopParams")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopParams:
    """The loop's and the run driver's own parameters: what a recipe's params give the loop
    (:attr:`~.recipe.Recipe.loop_params`); a study whose params are its own builds one."""

    max_grad_norm: float
    batch_size: int
    grad_accum: int
    max_steps: int
    eval_steps: int
    eval_batch_size: int
    save_steps: int
    save_total_limit: int
    logging_steps: int
    gradient_checkpointing: bool
    compile_layers: bool
    seed: int
    no_learning_steps: int | None
    no_learning_min_gain: float
    plateau_patience: int | None
    plateau_min_delta: float
    plateau_min_steps: int | None
    keep_checkpoints: bool
    # no default in the core's finetune schema: None where unset
    stall_s: float | None = None
    #: the keys that may be absent (no default) and were: left out of :meth:`as_dict`
    unset: frozenset[str] = frozenset()

    #: the fields that are not parameters
    NOT_KEYS: ClassVar[frozenset[str]] = frozenset({"unset"})

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in cls.NOT_KEYS]

    @classmethod
    def optional(cls) -> set[str]:
        """The keys that may be absent: those with a default here (None)."""
        defaulted = {
            f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
        }
        return defaulted - cls.NOT_KEYS

    @classmethod
    def _from_checked(cls: type[_T], params: dict[str, Any]) -> _T:
        unknown = set(params) - set(cls.keys())
        if unknown:  # the schema has a key the type lacks: the type must grow a field
            raise TrainingConfigError(
                f"{cls.__name__} has no field for {', '.join(sorted(unknown))}: add it "
                f"(docs/training.md, Parameters)"
            )
        return cls(**params, unset=frozenset(cls.optional() - set(params)))

    def as_dict(self) -> dict[str, Any]:
        """The plain dict it was built from (records, run keys, summaries)."""
        return {k: getattr(self, k) for k in self.keys() if k not in self.unset}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainParams(LoopParams):
    """A finetune's or pretraining's parameters, resolved and checked (built only by
    :func:`resolve_params` or :func:`check_params`). The schema is the one statement of keys,
    bounds and defaults: a field has none of its own. A study's keys: a subclass."""

    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"]
    optim: Literal["adafactor", "adamw_torch", "adamw_torch_fused", "sgd"]
    bf16: _Auto | bool
    model_dtype: _Dtype
    master_weights: _Auto | bool
    save_dtype: _Dtype
    max_seq_len: int
    eval_size: int
    # no default in the core's finetune schema: None where unset
    attn_implementation: str | None = None
    data_parallel: Literal["sharded_masters", "sharded_weights"] | None = None
    loss_vocab: Literal["full", "corpus"] | None = None


def resolve_params(
    params: dict | None,
    kind: str,
    schema: dict[str, Any] | None = None,
    cls: type[_T] = TrainParams,
) -> _T:
    """The defaults of ``kind`` (or of ``schema``) overlaid with ``params``, checked (a library
    command line's or a benchmark's; the pipeline's config gets them from its validation)."""
    schema = schema or params_schema(kind)
    return check_params({**config.defaults_of(schema), **(params or {})}, kind, schema, cls=cls)


def check_params(
    params: dict[str, Any] | TrainParams,
    kind: str,
    schema: dict[str, Any] | None = None,
    optional: tuple[str, ...] = (),
    cls: type[_T] = TrainParams,
) -> _T:
    """``params`` as a job takes them (resolved), checked only: against the schema of ``kind``
    (or ``schema``), every key that has a default present but those ``optional``; as ``cls``."""
    if isinstance(params, TrainParams):
        params = params.as_dict()
    schema = schema or params_schema(kind)
    try:
        config.check(params, schema, f"{kind} parameter")
    except config.ConfigError as exc:
        raise TrainingConfigError(str(exc)) from None
    missing = sorted(set(config.defaults_of(schema)) - set(params) - set(optional))
    if missing:
        raise TrainingConfigError(
            f"{kind} parameters without {', '.join(missing)}: a job takes them resolved "
            f"(the config's defaults filled in when it is parsed; a library caller: resolve_params)"
        )
    return cls._from_checked(params)


def bf16_enabled(setting: Any) -> bool:
    if setting == "auto":
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(setting)


def weights_dtype(name: str, bf16: Any = "auto") -> torch.dtype:
    """The dtype a ``model_dtype`` or ``save_dtype`` of ``name`` gives: ``auto`` is bfloat16 when
    ``bf16`` is on and float32 otherwise (the one rule of trained and frozen weights)."""
    import torch

    if name == "auto":
        return torch.bfloat16 if bf16_enabled(bf16) else torch.float32
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise TrainingConfigError(f"{name!r} is not a torch dtype (e.g. float32, bfloat16)")
    return dtype


def model_dtype(p: TrainParams) -> torch.dtype:
    return weights_dtype(p.model_dtype, p.bf16)


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (as records and the config write it)."""
    return str(dtype).removeprefix("torch.")


def master_weights_enabled(p: TrainParams) -> bool:
    if p.master_weights == "auto":
        return model_dtype(p).itemsize < 4
    return bool(p.master_weights)


def save_dtype(p: TrainParams) -> torch.dtype:
    return weights_dtype(p.save_dtype, p.bf16)
