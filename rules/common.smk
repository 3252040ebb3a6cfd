# Shared by every study: config validation, the results folder, resource and target helpers
# (each study applies resource_helpers to its own keys).
# Nothing here imports torch: the Snakefile must parse in well under a second (no-op reruns).
import os
import sys
from contextlib import contextmanager

from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.io import IOFile
from snakemake.utils import update_config

from ablate import studies
from ablate.core.trees import experiments, results_lock, results_origin, results_trees
from ablate.upstream import smk
from ablate.core.outputs import hub_revisions
from ablate.core.config import (
    ConfigError,
    config_files_error,
    configfile_error,
    schema_error,
    sorted_tree,
    typed_config_args,
    validate_config as validate_schema,
)
from ablate.core.execution import warm
from ablate.core.execution.interrupts import forward_sigint_to_jobs
from ablate.core.outputs.provenance import WORKFLOW_DIR_ENV

# A SIGINT sent to Snakemake alone (`kill -INT <pid>`) reaches its local jobs too, as a terminal's
# Ctrl-C does: a finetune then saves a checkpoint and stops instead of running on to its end and
# being redone (ablate.core.execution.interrupts).
forward_sigint_to_jobs()

# Provenance records the git state of this checkout (the Snakefile's folder), not of the folder
# the library is installed from; every job inherits the variable.
os.environ[WORKFLOW_DIR_ENV] = workflow.basedir


def validate_config(cfg):
    """The config checked against the package's schema (ablate.core.config.validate_config:
    every study's part, defaults filled in), a violation as one line naming the key path and the
    bad key or value; a study's key still at the top level (an old config) as one line saying how
    to convert it.
    """
    if msg := studies.moved_keys_error(cfg):
        raise WorkflowError(msg)
    try:
        validate_schema(cfg)
    except ValidationError as exc:
        raise WorkflowError(schema_error(exc)) from None


# A target typed after --configfile was read as one more config file: say so in one line (not as
# the schema errors of its keys). A missing --configfile fails in Snakemake before this file runs.
if msg := configfile_error(workflow.overwrite_configfiles or [], "results"):
    raise WorkflowError(msg)
# A key written twice in a config file: Snakemake's loader kept the second silently; the one
# line names both (every --configfile, or the `configfile:` default), before any job. A key the
# workflow alone sets (an experiment's marker), in a config file or --config: one line too.
if msg := config_files_error(workflow.configfiles, experiments.BY_WORKFLOW):
    raise WorkflowError(msg)
for _key, _why in experiments.BY_WORKFLOW.items():
    if _key in workflow.config_settings.overwrite_config:
        raise WorkflowError(f"--config {_key}: {_why}")

# An experiment's configuration (config `experiments`: the Snakefile loads itself once per
# experiment, ablate.core.trees.experiments) names itself and its base; None in the base's.
EXPERIMENT = config.get(experiments.MARKER)
# --config's nested values as a config file would type them (Snakemake's are all text); an
# experiment's configuration was made from the base's, which has them
if not EXPERIMENT:
    update_config(config, typed_config_args(workflow.config_settings.config_args))
validate_config(config)


STUDIES = config["studies"]
# the studies of this run the runtime/cost planner forecasts (rules/plan.smk; `plan.studies`)
PLANNED_STUDIES = [s for s in STUDIES if s in config["plan"]["studies"]]
# Every file this configuration writes lives under one folder (config key `results`), so two
# configurations (the embedded default, a real study) never mix their outputs.
RESULTS = config["results"]
# Not the workflow's own folder; not a folder made under another name or by another working
# directory's runs (ablate.core.trees.results_origin); not in another results tree's files (an
# experiment's tree, a base tree's own folders: ablate.core.trees.results_trees): refused before
# any job, a dry run too. A job's own parse (a cluster or remote job) is the run's, checked already.
if msg := results_origin.name_error(RESULTS):
    raise WorkflowError(msg)
if workflow.is_main_process:
    if msg := results_origin.origin_error(RESULTS, os.getcwd()):
        raise WorkflowError(msg)
    if msg := results_trees.nesting_error(RESULTS, EXPERIMENT):
        raise WorkflowError(msg)


# Every job of the studies this configuration runs (core Jobs, ablate.core.jobs: each study's
# common.smk adds its own job list); the plan rules forecast the ones with a kind.
JOBS = []


_JOB_INDEX = {}


def job_config(rule):
    """A params function of `rule`: its job's config slice (Job.config, built by the study's
    layout), which its script records in its record's provenance; found by the job's wildcards.
    """

    def config_of(wildcards):
        if not _JOB_INDEX:  # JOBS is complete once the rules run their params functions
            _JOB_INDEX.update(
                {(j.rule, tuple(sorted(j.wildcards.items()))): j for j in JOBS}
            )
        key = (rule, tuple(sorted(wildcards.items())))
        if key not in _JOB_INDEX:
            raise WorkflowError(f"no job of rule {rule} with wildcards {dict(key[1])}")
        return _JOB_INDEX[key].config

    return config_of


def rule_of(name):
    """The rule ``name`` of this configuration; an experiment's is its module's
    (exp_<name>_<rule>), the base's where the experiment left it out (its every job shared).
    """
    own = experiments.rule_prefix(EXPERIMENT["name"]) + name if EXPERIMENT else name
    return workflow.get_rule(own if workflow.is_rule(own) else name)


def out(path):
    """A path under this configuration's results folder (outputs, logs, benchmarks)."""
    return f"{RESULTS}/{path}"


def hub_lock_input(uses_hub):
    """The hub revisions' lock as an input of a job that loads pinned hub data or models: an
    executor without a shared filesystem (Vast) ships declared inputs only, and the job re-parses
    the workflow there, so it must pin the commits its key was made with. Ancient: a new entry
    for another repository reruns nothing (the job's own pins are in its params)."""
    lock = hub_revisions.lock_path(RESULTS)
    return {"hub_revisions": ancient(str(lock))} if uses_hub and lock.exists() else {}


def only_targets(names):
    """Whether this invocation asks for these targets (paths or rule names) and nothing else;
    false for the default target (rule all) and --report. Read at DAG time, not parse time.
    """
    targets = workflow.dag_settings.targets
    return bool(targets) and {os.path.relpath(t) for t in targets} <= set(names)


def asked_alone(names, output, full_inputs):
    """only_targets(names), for a rule that, asked for alone, reads what exists instead of waiting
    for its inputs (`full_inputs`: a plan, STATUS). Its input list and params then differ from a
    full run's, and the record Snakemake keeps of the last run decides the next dry run: so on a
    finished run (a full run's record of `output` exists, its recorded input list not empty, and
    every one of `full_inputs` exists) this invocation records no metadata (as --drop-metadata)
    and the run stays clean after it. On a partial run (or before a full run) the alone run's
    record is kept: a dry run of the same target then has nothing to do, and its params rerun it
    when a result is newer. The setting holds for the whole invocation: a plan_estimate that
    reruns with the plan asked for alone (an edited `plan:` setting) keeps its old record and runs
    once more in the next run.
    """
    if not only_targets(names):
        return False
    finished = all(os.path.exists(f) for f in full_inputs)
    if finished and workflow.persistence.input(IOFile(output)):
        workflow.execution_settings.keep_metadata = False
    return True


def resource_helpers(resources):
    """(res, resources_of) over one study's own resources node (group -> key -> value):
    ``res(group, key)`` one value; ``resources_of(group)`` a GPU-capable group's resources, a
    null gpu_model left out (any GPU), one SLURM task for a job of several GPUs."""

    def res(group, key):
        return resources[group][key]

    def resources_of(group):
        r = {k: v for k, v in resources[group].items() if k != "threads"}
        if r.get("gpu_model") is None:
            r.pop("gpu_model", None)
        if r.get("gpu", 0) > 1:
            # a job of N GPUs is one SLURM task holding them all, which launches its N processes
            # itself (torchrun): the slurm plugin's tasks_per_gpu: 0 drops its default
            # --ntasks-per-gpu=1, which would start the job's script N times
            r["tasks_per_gpu"] = 0
        return r

    return res, resources_of


def job_outputs(jobs):
    """Every output of every job (core Jobs): what rule all asks for beside the study targets."""
    return [f for j in jobs for f in j.outputs.values()]


def take_results_lock(deleting=False):
    """The results folder's lock for this process (ablate.core.trees.results_lock; its
    experiments' trees are under it): held by another running Snakemake, of any working
    directory, one line naming it; a stale one taken over with one line."""
    try:
        if note := results_lock.acquire(RESULTS, deleting):
            print(note, file=sys.stderr)
    except results_lock.ResultsLocked as exc:
        raise WorkflowError(str(exc)) from None


@contextmanager
def deleting_under_the_lock(dryrun):
    """Snakemake's delete commands (--delete-all-output, --delete-temp-output: no onstart runs
    for them) hold the results folder's lock as a run does; a dry run takes none."""
    if not dryrun:
        take_results_lock(deleting=True)
    try:
        yield
    finally:
        if not dryrun:
            results_lock.release(RESULTS)


# the base's Snakefile alone: an experiment's tree is under its base's lock
if not EXPERIMENT:
    smk.guard_deletes(workflow, deleting_under_the_lock)


onstart:
    # One running Snakemake per results folder (ablate.core.trees.results_lock): a second run, from
    # another working directory too, stops here in one line, before its first job removes
    # anything. A dry run runs no onstart; --nolock (Snakemake's own lock off) takes none either.
    from ablate.core.trees.results_trees import mixed_warning

    if workflow.execution_settings.lock:
        take_results_lock()
    # the name and working directory this run's records of the folder's jobs are kept under
    results_origin.record(RESULTS, os.getcwd())
    # each experiment's definition in its tree: what it changes, which jobs are the base's
    experiments.record(EXPERIMENTS, workflow.overwrite_configfiles or [])
    # A results folder another configuration also wrote into (an overlay's seeds, another config
    # with the same `results:`): said in one line before the first job.
    if msg := mixed_warning(RESULTS, job_outputs(JOBS), STUDIES):
        print(msg, file=sys.stderr)
    # the run's model jobs forked from a process that imported torch once (a local run's;
    # ablate.core.execution.warm)
    if workflow.local_exec:
        warm.start_run(os.getpid())
    # the progress line's time left: the planner's estimates of this run's planned jobs still to
    # do, on this machine's setup, and the count of the jobs it does not estimate (a local run;
    # ablate.core.execution.terminal)
    if workflow.local_exec and PLANNED_STUDIES:
        from ablate.core.execution import terminal
        from ablate.core.planner.files import PLAN_FILES

        terminal.follow(
            JOBS,
            {str(f) for job in workflow.dag.needrun_jobs() for f in job.output},
            out(PLAN_FILES["estimate_csv"]),
            terminal.local_setup(config),
        )


onsuccess:
    from snakemake.logging import logger
    from ablate.core.trees import results_lock
    from ablate.core.execution import terminal

    # each experiment this run made up to date (its jobs among the run's, run or current):
    # the base's records it was made from, which `ablate runs` compares its deltas' base with
    experiments.finished(
        EXPERIMENTS, [str(f) for j in workflow.dag.jobs for f in j.output]
    )
    results_lock.release(RESULTS)
    warm.stop_run()
    # the run's end: claims, where the results are, the report command (the logger plugin
    # prints it after Snakemake's closing lines); a run of experiments alone (`ablate exp
    # run`): each experiment's own tree, claims and deltas against the base
    from ablate.core.reports import exp_summary
    from ablate.core.trees import exp_run

    mine = exp_run.experiments_run(
        [r.name for r in workflow.dag.targetrules],
        workflow.dag.targetfiles,
        EXPERIMENTS,
    )
    summary = (
        exp_summary.closing_lines(config["results"], mine)
        if mine
        else terminal.run_summary(
            config, STUDIES, workflow.overwrite_configfiles or [], os.getcwd()
        )
    )
    logger.info("\n".join(summary), extra={terminal.SUMMARY: True})


onerror:
    from ablate.core.trees import results_lock

    results_lock.release(RESULTS)
    warm.stop_run()
