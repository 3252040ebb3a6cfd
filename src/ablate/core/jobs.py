"""One job type and the study parts: what a study hands the rules, STATUS and the planner.

A study is three modules named in the registry :mod:`ablate.studies`: its layout
(:class:`StudyLayout`; no torch, the Snakefile imports it at parse time), its status side
(:class:`StudyStatus`) and its plan side (:class:`StudyPlanner`); docs/design.md, "Adding a study".
What only one study needs rides in ``Job.labels``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass
class Job:
    """One job of a study, as the rules run it; paths as Snakemake names them."""

    study: str
    rule: str
    name: str  # unique in its study: "eval/base/causal", "finetune/3A", "train/1a+2c", ...
    wildcards: dict[str, str]
    outputs: dict[str, str]  # the rule's output name -> path, in the rule's order
    log: str | None
    stage: int | None = None  # the study's numbered stage (0, 1, 2, ...)
    kind: str | None = None  # what the planner forecasts (train, eval, ...); None: not planned
    benchmark: str | None = None  # its Snakemake benchmark file
    record: str | None = None  # the output JSON whose provenance records its slice and hardware
    upstream: list[str] = field(default_factory=list)  # names of the jobs whose outputs it reads
    loads: str | None = None  # the job whose checkpoint it loads (a vast group shares its instance)
    serves: list[str] = field(default_factory=list)  # the configured units it serves (grid entries)
    gpus: int = 0  # GPUs its resources request
    #: its config slice, built once by the layout: its rule passes it whole (one param),
    #: its record's provenance holds it, staleness compares the two (None: no config)
    config: Any = field(default=None, repr=False)
    labels: dict[str, Any] = field(default_factory=dict, repr=False)  # study-specific facts

    @property
    def shown_stage(self) -> str:
        """STATUS's first column: the numbered stage, else the units it serves."""
        return " ".join(self.serves) if self.stage is None else str(self.stage)


#: Where a job's log and a planned job's benchmark go, relative to the results folder: one folder
#: per rule, one file per job (``stem`` holds the rule's wildcards).
LOG = "logs/{folder}/{stem}.log"
BENCHMARK = "benchmarks/{folder}/{stem}.tsv"


#: A job's one line (ablate.job_script.say: ``ran in 41 s``, or how it was restored), on the
#: terminal and in its log; ``ablate runs`` reads them back (:func:`said`).
JOB_LINE = "[job] {label}: {text}"
RESTORED_LINE = "restored from the run cache"  # how a restored job's text begins
#: What a job says that the run cache never restores (its output is of the tree as it is now):
#: not ``ran``, so a revert that restores every job says no "ran".
REMADE_LINE = "remade in {seconds:.0f} s from the tree as it is now (never restored: {why})"


def said(log: str | Path) -> str | None:
    """What a job's last run said in its log (the text of its last :data:`JOB_LINE`); None where
    it said nothing (it failed, was stopped, or the log is gone)."""
    head = JOB_LINE.split("{label}")[0]
    try:
        with open(log, errors="replace") as f:
            lines = [x for x in f if x.startswith(head)]
    except OSError:
        return None
    return lines[-1].rstrip("\n").partition(": ")[2] if lines else None


def log_pattern(folder: str, stem: str) -> str:
    """:data:`LOG` of a rule's ``folder``; ``stem`` may hold the rule's {wildcards}."""
    return LOG.format(folder=folder, stem=stem)


def benchmark_pattern(folder: str, stem: str) -> str:
    """:data:`BENCHMARK` of a rule's ``folder``; ``stem`` may hold the rule's {wildcards}."""
    return BENCHMARK.format(folder=folder, stem=stem)


def make_job(
    results: str,
    study: str,
    rule: str,
    name: str,
    outputs: dict[str, str],
    *,
    folder: str,
    stem: str,
    record: str | None = None,
    kind: str | None = None,
    resources: dict[str, Any] | None = None,
    **kw: Any,
) -> Job:
    """The one way a study builds a :class:`Job`: ``outputs`` under ``results``, its record the
    output named ``record``, its log and (if planned) benchmark at :data:`LOG` and
    :data:`BENCHMARK`."""
    at = f"{results}/{{}}".format
    outputs = {k: at(o) for k, o in outputs.items()}
    return Job(
        study=study,
        rule=rule,
        name=name,
        outputs=outputs,
        log=at(log_pattern(folder, stem)),
        kind=kind,
        benchmark=at(benchmark_pattern(folder, stem)) if kind else None,
        record=outputs[record] if record else None,
        gpus=int((resources or {}).get("gpu") or 0),
        **kw,
    )


@runtime_checkable
class StudyLayout(Protocol):
    """A study's layout module."""

    #: every file of the study, relative to the results folder (the rules' out(PATTERNS[...]))
    PATTERNS: dict[str, str]

    def jobs(self, config: dict[str, Any]) -> list[Job]:
        """Every job of the study for a schema-validated config, in run order."""

    def targets(self, config: dict[str, Any]) -> list[str]:
        """The files a full run of the study ends with (rule all's inputs, STATUS waits for)."""

    def plan_config(self, config: dict[str, Any]) -> Any:
        """What of its config section its forecast depends on (the plan rules' params: an edit
        of it reruns the forecast)."""


@runtime_checkable
class StudyStatus(Protocol):
    """A study's side of STATUS.md; optionally ``run_numbers(results)`` and ``claims(results)``
    for ``ablate runs``, and ``answer(rows)``, its answer in one sentence from a claims table's
    rows (None: none), for a run's summary (:func:`ablate.core.execution.terminal.run_summary`)."""

    def headline(self, job: Job, record: dict[str, Any]) -> str:
        """A finished job's headline numbers, from its record."""

    def changes(self, job: Job, old: Any, config: dict[str, Any]) -> list[str]:
        """Why a finished job is stale: ``key old -> new`` per config key changed between the
        slice its record holds (``old``) and the config now; [] when current."""

    def key_results(self, config: dict[str, Any], workdir: Path) -> list[str]: ...

    def forecast(self, config: dict[str, Any], workdir: Path, rows: list[Any]) -> list[str]: ...


@runtime_checkable
class StudyPlanner(Protocol):
    """A study's side of the runtime/cost planner."""

    def study_plan(self, config: dict[str, Any], ref: Any, root: Path) -> Any:
        """Its planned jobs (a ``StudyPlan`` of ``PlannedJob`` rows built from its Jobs)."""
