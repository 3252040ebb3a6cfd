"""The planner's inputs: the config (schema defaults filled), the setups and the measurements file.

A missing or malformed measurements file is no exception: :func:`load_reference` returns an empty
reference that names the problem, and every row it touches says so.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ablate import studies

log = logging.getLogger("ablate.planner")

_KINDS = ("train", "eval", "probe", "generate")  # generate: decoding, tokens/s of new tokens
CPU = "cpu"


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class Setup:
    gpu: str  # Vast gpu_name (e.g. "H100 SXM") or "cpu"
    count: int = 1
    local: bool = False  # runs where Snakemake runs: no instance to boot, nothing to ship
    price_per_hour: float | None = None  # a price the user set for this setup
    #: one rented machine for the whole run (Snakemake on it): it boots once, downloads each hub
    #: model once and ships nothing; always so for several GPUs. Else an instance per job
    machine: bool = False
    interruptible: bool = False  # an interruptible (bid) instance per job

    @property
    def label(self) -> str:
        # several GPUs are one machine anyway
        machine = " machine" if self.machine and self.count == 1 else ""
        return f"{self.count}x {self.gpu}{machine}" + (" bid" if self.interruptible else "")


@dataclass
class Measurement:
    kind: str
    policy: str | None
    gpu: str
    params: float
    tokens_per_s: float  # per GPU
    source: str
    origin: str  # "pipeline" (this project's outputs) or "table" (measurements file)
    run_id: str | None = None
    job: str | None = None  # the job id it was measured on (pipeline measurements)
    optim: str | None = None  # training recipe: the optimizer it ran with
    #: micro-batches per optimizer step; a train job with another grad_accum does not use it (at
    #: GA 1 the optimizer step dominates: the smoke run's 4 x 256 steps)
    grad_accum: int | None = None
    flops_per_token: float | None = None  # of the measured work (the bridge's vary per entry)
    packing: bool | None = None  # packed steps or not (None: full rows)
    compile_layers: bool = False  # measured with ``compile_layers`` on
    peak_memory_gb: float | None = None  # peak GPU memory of the measured work (None: unknown)


@dataclass
class Scaling:
    """A measured speed-up of a training step on ``gpus`` GPUs of one host against the one-GPU
    default recipe (the same global batch), for a data-parallel ``recipe``."""

    kind: str
    gpu: str
    params: float
    gpus: int
    speedup: float
    recipe: str
    packing: bool
    source: str

    @property
    def exchange(self) -> float:
        """The step's exchange time per unit of one GPU's step time, from this row: a step on n
        GPUs takes 1/n of the work plus (n - 1)/n of a fixed exchange (the ring collectives'
        volume), so speedup(n) = n / (1 + exchange x (n - 1))."""
        return (self.gpus / self.speedup - 1) / (self.gpus - 1)


@dataclass
class _JobOverhead:
    """Measured seconds of one kind of job outside its own work: start-up, load, saves; ``rule``
    where one is named (pretraining from scratch is a train job unlike a finetune)."""

    kind: str
    gpu: str
    params: float
    seconds: float
    source: str
    rule: str | None = None


def _checked_rows(p: Path, data: dict, section: str, value: str) -> list[dict[str, Any]]:
    """The rows of a measurements-file section; PlanError names the first bad one."""
    rows = data.get(section) or []
    for i, r in enumerate(rows):
        missing = [k for k in ("kind", "gpu", "params", value, "source") if k not in r]
        if missing:
            raise PlanError(f"{p}: {section}[{i}] lacks {', '.join(missing)}")
        if r["kind"] not in _KINDS:
            raise PlanError(f"{p}: {section}[{i}].kind {r['kind']!r} is not one of {_KINDS}")
    return rows


@dataclass
class Reference:
    """config/gpu_measurements.yaml: GPU specs, model shapes, task sizes, measured throughput."""

    gpus: dict[str, dict[str, Any]]
    models: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    tokens_per_request: dict[str, Any]
    measurements: list[Measurement]
    path: str
    problem: str | None = field(default=None)  # why it is empty (the file is missing or malformed)
    job_overheads: list[_JobOverhead] = field(default_factory=list)
    #: token lengths of a bridge training example, of one SFT pair, per dataset
    bridge_lengths: dict[str, dict[str, Any]] = field(default_factory=dict)
    sft_lengths: dict[str, dict[str, Any]] = field(default_factory=dict)
    scaling: list[Scaling] = field(default_factory=list)  # measured data-parallel speed-ups

    @classmethod
    def load(cls, path: str | os.PathLike) -> Reference:
        p = Path(path)
        if not p.exists():
            raise PlanError(f"measurements file {p} does not exist (config key plan.measurements)")
        data = yaml.safe_load(p.read_text()) or {}
        for key in ("gpus", "measurements"):
            if key not in data:
                raise PlanError(f"measurements file {p} lacks the section {key!r}")
        for name, spec in data["gpus"].items():
            for key in ("tflops_bf16", "memory_gb", "torch_names", "source"):
                if key not in spec:
                    raise PlanError(f"{p}: gpus.{name} lacks {key!r}")
        ms = [
            Measurement(
                kind=m["kind"],
                policy=m.get("policy"),
                gpu=m["gpu"],
                params=float(m["params"]),
                tokens_per_s=float(m["tokens_per_s"]),
                source=f"{m['source']} [{p.name}]",
                origin="table",
                optim=m.get("optim"),
                grad_accum=m.get("grad_accum"),
                flops_per_token=m.get("flops_per_token"),
                packing=m.get("packing"),
                compile_layers=bool(m.get("compile_layers", False)),
                peak_memory_gb=m.get("peak_memory_gb"),
            )
            for m in _checked_rows(p, data, "measurements", "tokens_per_s")
        ]
        overheads = [
            _JobOverhead(
                o["kind"],
                o["gpu"],
                float(o["params"]),
                float(o["seconds"]),
                f"{o['source']} [{p.name}]",
                o.get("rule"),
            )  # fmt: skip
            for o in _checked_rows(p, data, "job_overheads", "seconds")
        ]
        scaling = [
            Scaling(
                r["kind"],
                r["gpu"],
                float(r["params"]),
                int(r["gpus"]),
                float(r["speedup"]),
                r["recipe"],
                bool(r["packing"]),
                f"{r['source']} [{p.name}]",
            )  # fmt: skip
            for r in _checked_rows(p, data, "scaling", "speedup")
        ]
        optional = ("models", "tasks", "tokens_per_request", "bridge_lengths", "sft_lengths")
        return cls(
            gpus=data["gpus"],
            measurements=ms,
            path=str(p),
            job_overheads=overheads,
            scaling=scaling,
            **{key: data.get(key) or {} for key in optional},
        )

    def speedup(
        self, kind: str, recipe: str, packing: bool, gpu: str, params: float, n: int
    ) -> tuple[float, str] | None:
        """The speed-up of a ``kind`` step on ``n`` GPUs from the measured rows of its recipe and
        packing mode (its GPU first; the nearest model size); None: no such row."""
        rows = [r for r in self.scaling if (r.kind, r.recipe, r.packing) == (kind, recipe, packing)]
        rows = [r for r in rows if r.gpu == gpu] or rows
        if not rows:
            return None
        size = min(rows, key=lambda r: abs(r.params - params)).params
        rows = [r for r in rows if r.params == size]
        exact = next((r for r in rows if r.gpus == n), None)
        if exact is not None:
            return exact.speedup, f"measured on {n} {exact.gpu}: {exact.source}"
        most = max(rows, key=lambda r: r.gpus)
        how = "extrapolated" if n > most.gpus else "interpolated"
        return n / (1 + most.exchange * (n - 1)), (
            f"{how} from {most.speedup:g}x measured on {most.gpus} {most.gpu} (a fixed exchange "
            f"per step, {most.exchange:.3f} of one GPU's step): {most.source}"
        )

    def job_overhead(self, kind: str, rule: str, gpu: str, params: float) -> _JobOverhead | None:
        """The measured overhead of a ``kind`` job of ``rule`` on ``gpu`` for a model of
        ``params`` (within 5 %); one that names no rule holds for every rule."""
        for o in self.job_overheads:
            if (
                o.kind == kind
                and o.rule in (None, rule)
                and o.gpu == gpu
                and abs(o.params - params) <= 0.05 * params
            ):
                return o
        return None

    def canonical_gpu(self, device_name: str) -> str | None:
        """torch device name ("NVIDIA H100 80GB HBM3") -> Vast gpu_name ("H100 SXM")."""
        for name, spec in self.gpus.items():  # file order: specific patterns first
            if any(re.search(pat, device_name, re.I) for pat in spec["torch_names"]):
                return name
        return None

    def peak_flops(self, gpu: str, plan: dict[str, Any]) -> tuple[float | None, str]:
        if gpu == CPU:
            gf = plan["cpu_gflops"]
            return gf * 1e9, f"cpu peak {gf:g} GFLOP/s (assumption, plan.cpu_gflops)"
        spec = self.gpus.get(gpu)
        if spec is None:
            return None, f"no spec for GPU {gpu!r} in {self.path}" + (
                f" ({self.problem})" if self.problem else ""
            )
        return spec["tflops_bf16"] * 1e12, spec["source"]


def load_reference(path: str | os.PathLike) -> Reference:
    """The measurements file, or an empty reference naming the problem (a warning in the log)."""
    try:
        return Reference.load(path)
    except (PlanError, OSError, yaml.YAMLError, TypeError, ValueError, AttributeError) as exc:
        log.warning("planner: %s; planning without it", exc)
        return Reference({}, {}, {}, {}, [], str(path), problem=str(exc))


def load_config(path: str | os.PathLike | list[str | os.PathLike]) -> dict:
    """Read a pipeline config with the schema's defaults filled, so the planner sees the config
    the rules see; a list of files is merged in order, as Snakemake merges ``--configfile a b``."""
    import jsonschema
    from snakemake.utils import update_config

    from ablate.core.config import config_files_error, error_words, validate_config
    from ablate.core.trees import experiments
    from ablate.core.user_yaml import config_mapping

    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(x) for x in path]
    config: dict = {}
    for one in paths:
        if not one.exists():
            raise PlanError(f"config file {one} does not exist")
        # a key written twice, a binary file, a list, a key the workflow alone sets
        if msg := config_files_error([one], experiments.BY_WORKFLOW):
            raise PlanError(msg)
        update_config(config, config_mapping(one))
    p = " + ".join(map(str, paths))  # the config's name in the messages below
    if msg := studies.moved_keys_error(config):  # an old config: say how to convert it
        raise PlanError(f"invalid config {p}: {msg}")
    try:
        validate_config(config)
    except jsonschema.ValidationError as cause:
        where = ".".join(str(x) for x in cause.absolute_path)
        raise PlanError(
            f"invalid config {p} at {where or '<top level>'}: {error_words(cause)}"
        ) from None
    return config


def has_cuda_driver() -> bool:
    """Whether this machine's CUDA driver library loads: without it ``torch.cuda`` finds no GPU,
    so the question needs no torch (its import took 5-10 s of a plan job on 2 cores)."""
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def _local_hardware(ref: Reference) -> tuple[str, int]:
    """(gpu_name, count) of this machine: its visible CUDA GPUs, else ("cpu", 1)."""
    if not has_cuda_driver():
        return CPU, 1
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return ref.canonical_gpu(name) or name, torch.cuda.device_count()
    return CPU, 1


def parse_setups(plan: dict[str, Any], ref: Reference) -> list[Setup]:
    """The setups of ``plan.setups``: the plan schema has checked each one's keys and types
    (``gpu`` given, ``count`` at least 1, at least one setup), not how they combine."""
    setups: list[Setup] = []
    for i, s in enumerate(plan["setups"]):
        gpu, count = str(s["gpu"]), int(s.get("count", 1))
        local = gpu == "local" or bool(s.get("local", gpu == CPU))
        if gpu == "local":
            gpu, count = _local_hardware(ref)
        machine = not local and bool(s.get("machine", count > 1))
        if count > 1 and not local and not machine:
            raise PlanError(
                f"plan.setups[{i}]: {count}x {gpu} with machine: false; several GPUs are one "
                "machine (its jobs side by side); an instance per job is a one-GPU setup"
            )
        interruptible = bool(s.get("interruptible", False))
        if interruptible and (local or machine):
            raise PlanError(
                f"plan.setups[{i}]: interruptible is a rented one-GPU setup with an instance per "
                "job (the vast profile's ablate-vast-bid), not a local setup or a machine"
            )
        setup = Setup(gpu, count, local, s.get("price_per_hour"), machine, interruptible)
        if all(x.label != setup.label for x in setups):
            setups.append(setup)
    return setups
