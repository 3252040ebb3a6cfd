"""What the planner forecasts: planned jobs, handed over by each study's job list.

The planner knows no study: each study's ``plan`` part (:mod:`ablate.studies`) returns a
:class:`StudyPlan` of its jobs with a ``kind``, or one per model of a study of several. A job whose
size cannot be worked out still gets a row: ``tokens`` or ``params`` is None and ``notes`` says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate import studies
from ablate.core.jobs import Job
from ablate.core.planner.inputs import Reference
from ablate.core.planner.model_size import ModelShape


@dataclass
class PlannedJob:
    job: Job
    model: str  # the model it runs (base | a variant), in words
    policy: str | None
    tokens: float | None  # None: unknown (tokens_source says why)
    tokens_source: str
    params: float | None  # parameters of the model it runs; None: unknown (params_source: why)
    params_source: str
    loads_hub_model: bool = False  # downloads the base weights from the hub
    #: the hub models it loads: on one rented machine each downloads once (empty: every such job)
    hub_models: tuple[str, ...] = ()
    ships_checkpoint: bool = False  # its input checkpoint is copied to a rented instance
    writes_checkpoint: bool = False  # saves (and ships back) a full checkpoint
    train_shape: dict[str, Any] | None = None  # batch_size, grad_accum, max_seq_len (train)
    dtype: str = "float32"  # dtype the weights are held in (memory check)
    optim: str | None = None  # optimizer (train): its states count in the memory check
    master_weights: bool = True  # 16-bit weights train with fp32 masters (memory check)
    #: trains under the loop's data-parallel recipes on several GPUs; False: replicated
    sharded: bool = False
    data_parallel: str | None = None  # its ``data_parallel`` setting (None: by what fits)
    shape: ModelShape | None = None  # hidden size, layers (train: activations, gathered layers)
    forward_tokens: float | None = None  # of one forward of one process (train: activations)
    gradient_checkpointing: bool = False  # activation checkpointing (train: activations)
    packing: bool | None = None  # packed steps (train): picks a measurement of the same mode
    compile_layers: bool = False  # compiled decoder layers (train): likewise
    shares_instance: str | None = None  # runs on the instance of this job (a vast group job)
    #: (every, of) steps of the checkpoints a rerun resumes from; None: ``train_shape``'s, if any
    resume_every: tuple[int, int] | None = None
    #: FLOPs per token for the FLOP estimate (None: 6 x params to train, 2 x for a forward)
    flops_per_token: float | None = None
    trainable_params: float | None = None  # None: all params train (memory check, train kind)
    #: its memory per GPU is the peak measured for its work (:func:`.memory_need.measured_need_gb`)
    memory_measured: bool = False
    unfit_note: str | None = None  # what its row adds when it does not fit (the way to a fit)
    scaling_key: str | None = None  # the plan.scaling key of its multi-GPU speedup (None: kind)
    gpus: int | None = None  # its ``gpu`` resource, capped at the setup's; None: all of them
    after: list[str] | None = None  # the jobs whose outputs it reads; None: every earlier one
    #: other work inside the job at its own rate, each {kind, policy, tokens, what} and an optional
    #: ``scaling_key`` (the bridge's generative evaluations during training)
    extra: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # missing inputs, said on every row
    #: train | eval | probe | generate (None: the job's); a copy for an ``extra`` takes its kind
    kind: str | None = None

    def __post_init__(self) -> None:
        if self.kind is None:
            self.kind = self.job.kind

    @property
    def id(self) -> str:
        """The job's name in its study's job list, e.g. "eval/base/causal", "train/1a+2c"."""
        return self.job.name

    @property
    def rule(self) -> str:  # the Snakemake rule that runs it (the vast profile groups rules)
        return self.job.rule

    @property
    def record(self) -> str | None:  # output JSON whose provenance has wall time + hardware
        return self.job.record

    @property
    def benchmark(self) -> str | None:  # Snakemake benchmark file of the job
        return self.job.benchmark

    @property
    def upstream(self) -> str | None:  # the job whose checkpoint it loads
        return self.job.loads


@dataclass
class StudyPlan:
    """One study's planned jobs and how to read its finished runs."""

    study: str
    model: str  # the model in words (the summary's first line)
    params: float | None  # the study's base model size
    params_source: str
    jobs: list[PlannedJob]
    #: size of the model a finished job ran, from its record (None: unknown)
    params_of_run: Callable[[PlannedJob, dict[str, Any]], float | None]
    #: tokens a finished job processed, from its record (None: the planned tokens)
    tokens_of_run: Callable[[PlannedJob, dict[str, Any]], float | None]


def study_plans(config: dict[str, Any], ref: Reference, root: str | os.PathLike) -> list[StudyPlan]:
    """The planned jobs of every study the config plans; a job whose rule shares a vast profile
    group with its upstream job's rule runs on that job's instance."""
    from ablate.core.planner.prices import vast_profile

    groups = vast_profile(config["plan"])["groups"]
    plans = []
    # both keys have their defaults from the schemas (config.schema.yaml, plan.schema.yaml)
    wanted = config["plan"]["studies"]
    for name in [s for s in config["studies"] if s in wanted]:
        got = studies.side(name, "plan").study_plan(config, ref, Path(root))
        for sp in got if isinstance(got, list) else [got]:  # a plan, or one per studied model
            rules = {j.id: j.rule for j in sp.jobs}
            for j in sp.jobs:
                up = rules.get(j.upstream or "")
                if up and groups.get(j.rule) is not None and groups.get(j.rule) == groups.get(up):
                    j.shares_instance = j.upstream
            plans.append(sp)
    return plans
