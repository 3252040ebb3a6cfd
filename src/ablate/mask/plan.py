"""The mask study's jobs as the planner sees them: tokens, model size, what each loads and writes.

A size that cannot be worked out leaves ``tokens`` or ``params`` empty with the reason; it never
raises (a forecast never stops a study)."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from ablate.core.jobs import Job
from ablate.core.outputs.records import read_json
from ablate.core.planner.inputs import Reference, log
from ablate.core.planner.model_size import (
    ModelShape,
    model_shape,
    params_from_dir,
    shape_of_hub_model,
)
from ablate.core.planner.planned_jobs import PlannedJob, StudyPlan
from ablate.core.training.memory import SHARDED_MASTERS
from ablate.mask import layout
from ablate.mask import models as model_dim
from ablate.mask.variants import variants_of

_TRAIN_SHAPE = ("batch_size", "grad_accum", "max_seq_len", "max_steps", "save_steps")


def _words(text: str) -> int:
    return len(str(text).split())


@functools.cache
def sft_words(seed: int, n: int) -> tuple[int, ...]:
    """Words of each generated SFT pair (prompt as formatted, and output), once a process."""
    from ablate.mask import embedded
    from ablate.mask.sft_data import format_prompt

    rows = embedded.sft_pairs(seed, n)
    return tuple(_words(format_prompt(r)) + _words(r["output"]) for r in rows)


@functools.cache
def doc_tokens(name: str, seed: int, n_docs: int) -> tuple[int, ...]:
    """Tokens of each generated document of an embedded task (words + 1 a request)."""
    from ablate.mask import embedded

    choices = embedded.task_yaml(name)["doc_to_choice"]
    out = []
    for doc in embedded.task_docs(name, seed, n_docs):
        text = sum(_words(v) for v in doc.values() if isinstance(v, str))
        out.append(sum(_words(c) + text + 1 for c in doc[choices]))
    return tuple(out)


def _fill(p: dict[str, Any], per_step: float) -> str:
    """How full a step's rows are (the pads are inside the rate measured for its mode)."""
    if not p.get("packing"):
        return "unpacked: rows padded to the longest pair of each micro-batch"
    rows = math.ceil(per_step / p["packing_row_tokens"])
    padded = rows * math.ceil(per_step / rows / 128) * 128  # each row's tail padded to 128
    return f"packed into {rows} row(s), {per_step / padded:.0%} full"


class _MaskPlanner:
    """Token counts and model sizes of the GPU jobs of one config (or one model ``lm`` of it)."""

    def __init__(self, config: dict[str, Any], ref: Reference, root: Path, lm: str | None = None):
        self.config, self.ref, self.root, self.lm = config, ref, root, lm
        self.plan = config["plan"]
        # the study's own keys, mask.model the model's
        self.mask = (model_dim.model_config(config, lm) if lm else config)["mask"]
        self.embedded_model = self.mask["model"]["source"] == "embedded"
        self.embedded_data = self.mask["data"]["source"] == "embedded"
        self.variants = variants_of(config)
        every = layout.jobs(config, self.variants)
        self.jobs = {j.name: j for j in model_dim.of_model(every, lm)}
        self.shape, self.params_source = self._base_shape()
        self.params = None if self.shape is None else float(self.shape.params)

    # -- model size
    def _base_shape(self) -> tuple[ModelShape | None, str]:
        m = self.mask["model"]
        try:
            if self.embedded_model:
                from ablate.mask.tiny import tiny_params

                emb = m.get("embedded") or {}
                family = emb.get("family", "ministral3")
                return (
                    model_shape(tiny_params(family, **(emb.get("arch") or {}))),
                    f"embedded tiny {family} (mask.model.embedded)",
                )
            return shape_of_hub_model(m["path"], m.get("revision"), self.ref.models, self.ref.path)
        except Exception as exc:  # an unbuildable shape: no size, every row says why
            log.warning("planner: model size unknown: %r", exc)
            return None, f"model size unknown: {type(exc).__name__}: {exc}"

    def params_of_run(self, job: PlannedJob, data: dict[str, Any]) -> float | None:
        """Size of the model a finished job ran, from its checkpoint's config.json."""
        if job.kind == "train":
            return params_from_dir(self.root / job.job.outputs["model"])
        named = data.get("model")
        path = named.get("path") if isinstance(named, dict) else named
        if isinstance(path, str) and path and (Path(path) / "config.json").is_file():
            return params_from_dir(path)
        if job.model != layout.BASE:
            return params_from_dir(self.root / self.path("finetune_model", variant=job.model))
        if self.embedded_model:
            return params_from_dir(self.root / self.path("base_model"))
        return self.params

    def path(self, key: str, **wildcards: str) -> str:
        """A file of this model's study."""
        if self.lm:
            return layout.model_path(self.config, self.lm, key, **wildcards)
        return layout.path(self.config, key, **wildcards)

    def tokens_of_run(self, job: PlannedJob, data: dict[str, Any]) -> float | None:
        """An evaluation's tokens with the documents it actually scored (metrics.json ``n``)."""
        if job.kind != "eval":
            return None
        tasks = data.get("tasks") or {}
        n_docs = {t: r.get("n") for t, r in tasks.items() if isinstance(r, dict) and r.get("n")}
        return self._eval_tokens(n_docs)[0]

    # -- tokens
    def _recorded_lengths(self, max_seq_len: int) -> tuple[dict[str, Any], str] | None:
        """The pair lengths a finished finetune here recorded at this ``max_seq_len``."""
        for j in self.jobs.values():
            if j.rule != "finetune":
                continue
            lens = (read_json(self.root / j.record) or {}).get("lengths") or {}
            if lens.get("mean") and lens.get("max_seq_len") == max_seq_len:
                return lens, f"mean of the {lens['n']} pairs {j.record} prepared"
        return None

    def _pair_tokens(self, max_seq_len: int) -> tuple[float, str]:
        """Tokens of one SFT pair, and where the number comes from."""
        recorded = self._recorded_lengths(max_seq_len)
        if recorded:
            return float(recorded[0]["mean"]), recorded[1]
        sizes = self.mask["data"].get("embedded") or {}
        if not self.embedded_data:
            name = self.mask["data"].get("sft")
            spec = self.ref.sft_lengths.get(name)
            if spec:
                mean = min(float(spec["mean"]), max_seq_len)
                return mean, f"sft_lengths.{name}: {spec['source']}"
            return float(max_seq_len), (
                f"upper bound: every pair {max_seq_len} tokens (no sft_lengths.{name} in "
                f"{Path(self.ref.path).name})"
            )
        if "sft_pairs" not in sizes:
            return float(max_seq_len), (
                f"upper bound: every pair {max_seq_len} tokens (mask.data.embedded.sft_pairs is not set)"
            )
        words = sft_words(self.mask["data"]["seed"], sizes["sft_pairs"])
        lens = [min(max_seq_len, w + 2) for w in words]
        return sum(lens) / len(lens), "mean words+2 of the generated SFT pairs"

    def _eval_tokens(self, n_docs: dict[str, int] | None = None) -> tuple[float | None, str]:
        """Tokens of one evaluation; ``n_docs`` (task -> documents scored) replaces the limits."""
        total, parts, unknown = 0.0, [], []
        tpr_default = self.ref.tokens_per_request
        for t in self.mask["eval"]["tasks"]:
            name, limit = t["name"], t.get("limit")
            if self.embedded_data:
                if "task_docs" not in (self.mask["data"].get("embedded") or {}):
                    return None, "unknown task sizes: mask.data.embedded.task_docs is not set"
                data = self.mask["data"]
                per_doc = doc_tokens(name, data["seed"], data["embedded"]["task_docs"])
                per_doc = per_doc[: (n_docs or {}).get(name) or limit or len(per_doc)]
                total += sum(per_doc)
                parts.append(f"{name} {len(per_doc)} docs")
                continue
            spec = {**self.ref.tasks.get(name, {}), **(self.plan["tasks"].get(name) or {})}
            n = (n_docs or {}).get(name) or (
                min(limit, spec["docs"]) if limit and "docs" in spec else limit or spec.get("docs")
            )
            tpr = spec.get("tokens_per_request") or tpr_default.get("value")
            if not n or "choices" not in spec or not tpr:
                unknown.append(name)
                continue
            total += n * spec["choices"] * tpr
            parts.append(f"{name} {n}x{spec['choices']}")
        if unknown:
            return None, (
                f"unknown size of task(s) {', '.join(unknown)}: add plan.tasks.<task> "
                "{choices, docs, tokens_per_request}"
            )
        if self.embedded_data:
            what = "generated task docs, words+1 per (context, choice) request"
            return total, f"{what}: " + ", ".join(parts)
        return total, (
            f"docs x choices x {tpr_default.get('value')} tokens/request "
            f"({tpr_default.get('source', 'measurements file')}): " + ", ".join(parts)
        )

    def _measured_tokens_per_step(self, shape: dict[str, Any]) -> tuple[float, str] | None:
        """Mean non-pad tokens/step of an earlier finetune with the same batch shape and data."""
        for j in self.jobs.values():
            if j.rule != "finetune":
                continue
            data = read_json(self.root / j.record) or {}
            p = data.get("params") or {}
            if (
                data.get("steps_done")
                and data.get("tokens_seen")
                and all(p.get(k) == shape[k] for k in ("batch_size", "grad_accum", "max_seq_len"))
            ):
                per_step = data["tokens_seen"] / data["steps_done"]
                return per_step, f"measured mean tokens/step of {j.record}"
        return None

    # -- planned jobs
    def planned(self, sj: Job) -> PlannedJob:
        hub = not self.embedded_model
        job = PlannedJob(
            job=sj,
            model=sj.labels["model"],
            policy=sj.labels["policy"],
            tokens=None,
            tokens_source="",
            params=self.params,
            params_source=self.params_source,
            gpus=sj.gpus,
            hub_models=(self.mask["model"]["path"],) if hub else (),
            # the jobs whose outputs it reads (the schedule on a multi-GPU setup)
            after=sj.upstream,
        )
        try:
            getattr(self, f"_plan_{sj.rule}")(sj, job, hub)
        except Exception as exc:  # a forecast never stops a study: the row says what failed
            log.warning("planner: cannot size %s: %r", sj.name, exc)
            job.tokens, job.tokens_source = None, f"unknown: {type(exc).__name__}: {exc}"
        return job

    def _train_shape(self, job: PlannedJob, p: dict[str, Any], where: str) -> list[str]:
        """Set a training job's shape, dtype and optimizer; return the size keys ``p`` lacks."""
        job.train_shape = {k: p.get(k) for k in _TRAIN_SHAPE}
        # "auto" (bf16 only on a bf16-capable GPU) is counted as float32: the safe memory bound
        job.dtype = p.get("model_dtype", "auto")
        job.optim = p.get("optim")
        job.master_weights = p.get("master_weights", "auto") is not False
        job.gradient_checkpointing = bool(p.get("gradient_checkpointing"))
        job.shape = self.shape
        job.writes_checkpoint = True
        return [f"{where}.{k}" for k in _TRAIN_SHAPE[:4] if not p.get(k)]

    def _plan_prepare_model(self, sj: Job, job: PlannedJob, hub: bool) -> None:
        p = (self.mask["model"].get("embedded") or {}).get("pretrain") or {}
        missing = self._train_shape(job, p, "mask.model.embedded.pretrain")
        if missing:
            job.tokens_source = f"unknown: {', '.join(missing)} not set"
            return
        job.tokens = p["max_steps"] * p["batch_size"] * p["grad_accum"] * p["max_seq_len"]
        job.forward_tokens = (
            p["packing_row_tokens"] if p.get("packing") else p["batch_size"] * p["max_seq_len"]
        )
        job.tokens_source = "max_steps x batch x grad_accum x max_seq_len (packed corpus blocks)"

    def _plan_leakage_probe(self, sj: Job, job: PlannedJob, hub: bool) -> None:
        leak = self.mask["leakage"]
        per_pair, src = self._pair_tokens(leak["max_seq_len"])
        job.tokens = 2 * leak["n_pairs"] * per_pair
        job.tokens_source = (
            f"2 forwards (causal + {sj.labels['policy']}) x {leak['n_pairs']} pairs x {per_pair:.4g} tokens "
            f"({src})"
        )
        job.loads_hub_model, job.ships_checkpoint = hub, not hub

    def _plan_finetune(self, sj: Job, job: PlannedJob, hub: bool) -> None:
        p = sj.labels["variant"]["params"]
        self._train_shape(job, p, f"mask.finetune.variants.{sj.labels['model']}")
        # gpu > 1: the loop's data-parallel recipe under torchrun, the global batch held
        job.scaling_key = "finetune_data_parallel"
        job.sharded = True
        job.data_parallel = p.get("data_parallel")
        job.loads_hub_model, job.ships_checkpoint = hub, not hub
        measured = self._measured_tokens_per_step(job.train_shape)
        if measured:
            per_step, src = measured
        else:
            pair, pair_src = self._pair_tokens(p["max_seq_len"])
            per_step = p["batch_size"] * p["grad_accum"] * pair
            src = f"batch x grad_accum x ({pair_src})"
        stops = p.get("plateau_patience") or p.get("no_learning_steps")
        stop = " (upper bound: a stop rule may end it earlier)" if stops else ""
        job.packing = bool(p.get("packing"))
        # one forward's tokens, an upper bound (N processes share a step)
        job.forward_tokens = (
            min(p["packing_row_tokens"], per_step)
            if job.packing
            else p["batch_size"] * p["max_seq_len"]
        )
        job.compile_layers = bool(p.get("compile_layers"))
        job.tokens = p["max_steps"] * per_step
        job.tokens_source = (
            f"max_steps {p['max_steps']} x {per_step:.4g} tokens/step ({src}); "
            f"{_fill(p, per_step)}{stop}"
        )

    def _plan_eval_model(self, sj: Job, job: PlannedJob, hub: bool) -> None:
        job.tokens, job.tokens_source = self._eval_tokens()
        base_from_hub = hub and sj.labels["model"] == layout.BASE
        job.loads_hub_model, job.ships_checkpoint = base_from_hub, not base_from_hub
        job.dtype = self.mask["eval"].get("dtype", "float32")


def study_plan(config: dict[str, Any], ref: Reference, root: Path) -> list[StudyPlan]:
    """The mask study's GPU-capable jobs: one plan, or one per model of a multi-model config."""
    return [_model_plan(config, ref, Path(root), lm) for lm in model_dim.names(config) or [None]]


def _model_plan(config: dict[str, Any], ref: Reference, root: Path, lm: str | None) -> StudyPlan:
    mp = _MaskPlanner(config, ref, root, lm)
    m = mp.mask["model"]
    family = (m.get("embedded") or {}).get("family", "ministral3")
    model = m.get("path") or f"embedded tiny {family}"
    return StudyPlan(
        study="mask",
        model=f"{lm}: {model}" if lm else model,
        params=mp.params,
        params_source=mp.params_source,
        jobs=[mp.planned(j) for j in mp.jobs.values() if j.kind],
        params_of_run=mp.params_of_run,
        tokens_of_run=mp.tokens_of_run,
    )


#: below this share of linear a finetune's GPUs pay less than the GPU pool's side by side runs
_PAYS = 0.5


def data_parallel_note(config: dict[str, Any]) -> str | None:
    """One line for a config whose finetunes ask more GPUs than pay (measured slower than one
    GPU, or below :data:`_PAYS` of linear); None where they pay or nothing was measured."""
    n = config["mask"]["resources"]["finetune"]["gpu"]
    if n <= 1:
        return None
    try:
        ref = Reference.load(config["plan"]["measurements"])
    except Exception:  # noqa: BLE001 (a missing or bad file: the planner says so; no note here)
        return None
    gpu = config["mask"]["resources"]["finetune"].get("gpu_model") or ""
    low: dict[str, list[str]] = {}
    for name, v in variants_of(config).items():
        p = v["params"]
        recipe = p.get("data_parallel") or SHARDED_MASTERS  # the recipe's where it fits
        got = ref.speedup("train", recipe, bool(p.get("packing")), gpu, 0.0, n)
        if got is not None and (got[0] < 1 or got[0] / n < _PAYS):
            mode = "packed steps" if p.get("packing") else "full rows"
            low.setdefault(f"{got[0]:.2f}x one GPU's speed ({mode}, {recipe})", []).append(name)
    if not low:
        return None
    what = "; ".join(f"{', '.join(names)}: {speed}" for speed, names in low.items())
    return (
        f"note: mask.resources.finetune.gpu: {n} buys little: {what}, measured "
        f"(config/gpu_measurements.yaml, scaling; below {_PAYS:.0%} of linear): set it to 1 and "
        "give the machine's GPUs to the pool (--resources gpu=N): the finetunes and evaluations "
        "then run side by side, one GPU each (docs/profiles.md)"
    )
