"""How a job script of the workflow starts (workflow/scripts/*.py), in one place.

The order matters, so each step is here once rather than in every script: (1) the log redirect
(everything after is in the rule's log); (2) the hub-offline switch, before any Hugging Face
import reads it; (3) for a model job (:func:`start`), the warm hand-off, the run cache (a restored
job is done), the imports, and only then the GPU claim: a job that waits for a device has done its
imports when one frees (docs/profiles.md, "One more GPU job than GPUs"), and CUDA, which reads
``CUDA_VISIBLE_DEVICES`` once, is not initialised before it. Every job says what happened to it in
one line, on the terminal and in its log (:func:`say`).
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ablate import studies
from ablate.core.jobs import JOB_LINE, REMADE_LINE
from ablate.core.outputs import provenance

if TYPE_CHECKING:  # the run cache is imported by the jobs that key it, not by every job
    from ablate.core.reruns.runcache import JobCache


def keep_freed_memory() -> None:
    """glibc's malloc keeps what a job frees for its next allocation (Linux; elsewhere nothing).

    By default glibc ``mmap``s a large tensor and returns it when freed, so a CPU training step
    pays page faults for the same activations every step (bench/results/first_run_cpu.md). Below
    1 GB, allocations now come from the heap and stay there: resident memory stays near its peak."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


def refusals() -> tuple[type, ...]:
    """The errors whose message says everything (what, where, the fix) in one line, written for
    the user: a config the pipeline cannot run, a model it cannot find (offline, not cached)."""
    from ablate.core.config import ConfigError
    from ablate.core.outputs.model_card import ModelCardError

    found: list[type] = [ConfigError, ModelCardError]
    # a training job's stop after a checkpoint that went in part (its rerun starts fresh); read
    # from the modules loaded, so a job that trains nothing imports no torch to fail
    saving = sys.modules.get("ablate.core.training.saving")
    if saving is not None:
        found.append(saving.PartlyLoaded)
    return tuple(found)


def interrupt_hook(exc_type: type, exc: BaseException, tb: Any) -> None:
    """``sys.excepthook`` of a job: an interrupt or a refusal (:func:`refusals`) ends the log with
    one line, not a traceback (Snakemake shows a failed job's log); any other error keeps it."""
    from ablate.core.execution.interrupts import TrainingInterrupted

    _JOB["failed"] = True
    if issubclass(exc_type, KeyboardInterrupt):
        print(
            "[interrupt] KeyboardInterrupt: stopped at once; a rerun runs the job again",
            file=sys.stderr,
        )
    elif issubclass(exc_type, TrainingInterrupted):
        print(f"[interrupt] {exc_type.__name__}: {exc}", file=sys.stderr)
    elif issubclass(exc_type, refusals()):
        print(f"[error] {exc_type.__name__}: {exc}", file=sys.stderr)
    else:
        sys.__excepthook__(exc_type, exc, tb)


#: This process's job: its label, start, whether its line was said, whether it failed, and its
#: run cache (what :func:`_said_at_exit` reports).
_JOB: dict[str, Any] = {}


def _label(snakemake: Any) -> str:
    """A job as its line names it: its rule and wildcards (``finetune 3A``, ``eval_model
    3A/causal``; an experiment's rule carries its name, ``exp_lr_finetune 3A``)."""
    values = [str(v) for _, v in snakemake.wildcards.items()]
    return " ".join(filter(None, [snakemake.rule, "/".join(values)]))


def say(text: str) -> None:
    """This job's one line (:data:`ablate.core.jobs.JOB_LINE`), on the terminal and in its log."""
    line = JOB_LINE.format(label=_JOB.get("label", "?"), text=text)
    _JOB["said"] = True
    for stream in {sys.__stderr__, sys.stdout}:
        print(line, file=stream, flush=True)


def _ran_line(outputs: Sequence[str | os.PathLike], seconds: float, cache: JobCache | None) -> str:
    """What a job that ran says: its seconds, where its record says it resumed from (a
    training's ``resumed_from_step``: ``resumed from checkpoint-N``), its run cache entry, and
    why it missed the cache's nearest entry of this job (a miss's cause on the job's one line)."""
    parts = [f"ran in {seconds:.0f} s"]
    for path in outputs:
        if str(path).endswith(".json") and os.path.isfile(path):
            try:
                step = json.loads(open(path).read()).get("resumed_from_step")
            except (ValueError, AttributeError):
                step = None
            if step is not None:
                parts.append(f"resumed from checkpoint-{step}")
                break
    if cache and cache.stored_key:
        parts.append(f"stored in the run cache as {cache.stored_key[:12]}")
    return ", ".join(parts) + (f"; {cache.missed}" if cache and cache.missed else "")


def _said_at_exit() -> None:
    """At the job's exit: ``ran in N s`` unless it said its line already (restored), failed
    (an uncaught exception), or left an output missing (it did not finish)."""
    import time

    if _JOB.get("said") or _JOB.get("failed"):
        return
    outputs = _JOB.get("outputs") or []
    if not all(os.path.exists(p) for p in outputs):
        return
    seconds = time.time() - _JOB["started"]
    if _JOB.get("remade"):
        say(REMADE_LINE.format(seconds=seconds, why=_JOB["remade"]))
        return
    say(_ran_line(outputs, seconds, _JOB.get("cache")))


def log_only(snakemake: Any, remade: str | None = None) -> None:
    """Step 1 alone: a job of no study (STATUS, the plan). ``remade``: why its output is never
    restored from the run cache, said in its line instead of ``ran``."""
    import time

    keep_freed_memory()
    # Python's last collection at exit walks every object torch and transformers made (about
    # 1 s a job); frozen, it walks none. Registered first, so it runs after every other handler.
    atexit.register(gc.freeze)
    _JOB.update(
        label=_label(snakemake),
        started=time.time(),
        outputs=[str(p) for p in snakemake.output],
        remade=remade,
    )
    atexit.register(_said_at_exit)
    # the records it reads, by run id, into its own record (every process of the job)
    os.environ[provenance.UPSTREAM_ENV] = json.dumps(provenance.upstream_runs(snakemake.input))
    sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)
    sys.excepthook = interrupt_hook


def start_light(snakemake: Any, study: str) -> None:
    """Steps 1 and 2: a job that reads and writes tables, no model."""
    log_only(snakemake)
    studies.hub_switch(snakemake.config, study)


def _restored_or_cache(
    snakemake: Any,
    side_outputs: Sequence[str | os.PathLike] = (),
    work: Sequence[str | os.PathLike] = (),
    after_restore: Callable[[], Any] | None = None,
    exact: bool = False,
):
    """The job's :class:`ablate.core.reruns.runcache.JobCache`; where it restores the outputs,
    the job says so and is done (exit 0)."""
    from ablate.core.reruns.runcache import JobCache

    job_cache = JobCache(snakemake, side_outputs, work, exact=exact)
    _JOB["cache"] = job_cache
    if job_cache.restored():
        if after_restore is not None:
            after_restore()
        say(job_cache.restored_line())
        sys.exit(0)
    return job_cache


def start_table(snakemake: Any, study: str):
    """Steps 1 and 2 and the run cache of a table or figure job, its inputs keyed by their bytes
    (its tables name each record's run id, which a rerun of the same result changes)."""
    start_light(snakemake, study)
    return _restored_or_cache(snakemake, exact=True)


def start(
    snakemake: Any,
    study: str,
    imports: Sequence[str] = (),
    side_outputs: Sequence[str | os.PathLike] = (),
    after_restore: Callable[[], Any] | None = None,
    work: Sequence[str | os.PathLike] = (),
):
    """Steps 1 to 3; returns the job's :class:`ablate.core.reruns.runcache.JobCache`. ``imports``:
    the modules the script uses, imported before the job waits for its GPUs; ``after_restore``:
    what the job does with its finished outputs besides them (its MLflow run), restored ones too;
    ``side_outputs`` and ``work``: as the cache's."""
    from ablate.core.execution import warm

    # in a local run, the rest in a process that imported torch already (the hub switch first:
    # the warm server's key covers the environment imports read)
    studies.hub_switch(snakemake.config, study)
    how = warm.hand_off()
    start_light(snakemake, study)
    job_cache = _restored_or_cache(snakemake, side_outputs, work, after_restore)
    if warm.start_for_next_jobs():  # it computes: the next jobs start warm
        how = f"{how}; it starts one for the next jobs"
    if how:
        print(f"[warm] {how}", flush=True)  # into the job's log
    # torch's is_available() through NVML: no CUDA initialisation before the claim
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    # the imports make a few million objects that live as long as the job: no collections while
    # they load, and frozen after, so that later collections do not walk them (1.3 s a job)
    gc.disable()
    import torch

    for name in imports:
        importlib.import_module(name)
    gc.freeze()
    gc.enable()
    from ablate.core.execution import gpu_watch, gpus

    gpus.claim_for(snakemake)
    if int(getattr(snakemake.resources, "gpu", 0) or 0) > 0:
        gpu_watch.start()  # its GPUs' utilisation and memory, into the record (none on a CPU)

    torch.set_num_threads(snakemake.threads)
    return job_cache


def run_entry(
    snakemake: Any,
    call: str,
    kwargs: dict[str, Any],
    *,
    processes: int | None = None,
    key: str = "resources.gpu",
    reporters: dict[str, Any] | None = None,
) -> Any:
    """Run the job's entry point ``call`` (``"module:function"``) with ``kwargs`` in this process,
    or in one data-parallel process per GPU (:func:`ablate.core.execution.parallel.launch`): then
    None. ``processes``: the configured process count (config key ``key``), refused unless the
    job was granted that many GPUs; None: one per GPU granted."""
    from ablate.core.execution import parallel

    granted = int(getattr(snakemake.resources, "gpu", 0) or 0)
    if processes is not None and processes > 1 and granted != processes:
        # the global batch (and the run id) counts the configured processes: never fewer silently
        raise RuntimeError(
            f"{key} asks {processes} data-parallel processes but this job was granted "
            f"gpu={granted}: a `resources: gpu` limit of the profile or command line caps it "
            f"(the vast profile's is 1: add --resources gpu={processes})"
        )
    nproc = max(granted, 1) if processes is None else processes
    if nproc > 1:
        parallel.launch(call, kwargs, nproc, snakemake.threads, reporters=reporters)
        return None
    if reporters:
        kwargs = {**kwargs, "reporters": parallel.resolve(reporters["call"])(**reporters["kwargs"])}
    return parallel.resolve(call)(**kwargs)
