# The mask study's layout, derived from the config: variants, training policies, evaluated
# models, and the input helpers of its rules. Shared helpers (validation, out(), resources) are
# in rules/common.smk. The job list and every file pattern come from ablate.mask.layout, which
# the planner and the recovery table read too.
import sys

from ablate.mask import families as mask_families
from ablate.mask import layout as mask_layout
from ablate.mask import models as mask_models
from ablate.mask import plan as mask_plan
from ablate.mask import policies as mask_policies
from ablate.mask import sft_data
from ablate.mask import status as mask_status
from ablate.mask import variants as mask_variants
from ablate.mask.layout import PATTERNS as P
from ablate.mask.tasks import check_task_names, own_tasks

# the study's own config keys (config `mask:`), as the bridge's BRIDGE_CFG
MASK = config["mask"]
# Models as a study dimension (mask.models, ablate.mask.models): each model's files in its
# folder, the rules' {lm} wildcard; [] and no folder for the one model of mask.model.
LMS = mask_models.names(config)
IN_MODEL = f"{mask_models.MODEL_DIR}/" if LMS else ""
try:  # each model's base model: mask.model with its entry of mask.models over it
    LM_MODELS = {lm: mask_models.model_of(config, lm) for lm in LMS}
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
EMBEDDED_MODEL = (LM_MODELS[LMS[0]] if LMS else MASK["model"])["source"] == "embedded"
EMBEDDED_DATA = MASK["data"]["source"] == "embedded"
# the hub-offline switch is per job: each script sets it from its study (ablate.studies.hub_switch)
# A misspelled task fails here, at parse time (a dry run), not on the first GPU job; not again in
# each spawned job. (A hub study's job list reads the same index for its tasks' datasets, pinned
# in the evaluations' slice: a fresh node builds it once, 5-30 s, then reads its cache.)
# The user's own task folders (mask.eval.task_dirs): task name -> its YAML and data files, every
# one an input of every evaluation (a folder or YAML that cannot be read: one line, here).
try:
    OWN_TASKS = own_tasks(MASK["eval"]["task_dirs"])
    if workflow.is_main_process:
        check_task_names(
            [t["name"] for t in MASK["eval"]["tasks"]],
            embedded=EMBEDDED_DATA,
            own=OWN_TASKS,
        )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
# Every job of the study (ablate.mask.layout.jobs): the plan rules forecast them, the recovery
# table labels its rows with their stages. A variant or claims role the config gets wrong: one line.
try:
    VARIANTS = mask_variants.variants_of(config)
    MASK_JOBS = mask_layout.jobs(config, VARIANTS)
    # an eval_size that leaves no SFT row to train on, a step of more examples than the rows
    # left: refused here, before Snakemake removes the outputs of the finished finetune it
    # would replace (a local file's rows are counted)
    if workflow.is_main_process:
        mask_variants.check_sft_sizes(config, VARIANTS)
        mask_models.check(config)
        # a model family (or backend) whose mask policies no audit has proven: refused here,
        # before any job, when its config.json can be read offline; else when it loads
        for _lm in LMS or [None]:
            mask_families.check_study(
                mask_models.model_config(config, _lm)["mask"] if _lm else MASK,
                mask_families.study_backends(VARIANTS),
                measurements=config["plan"]["measurements"],
                where=f"mask.models.{_lm}" if _lm else "mask.model",
            )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
MODELS = mask_layout.models(VARIANTS)
# the mask study's resources: the config's `mask.resources` (its groups)
res, resources_of = resource_helpers(MASK["resources"])
JOBS.extend(MASK_JOBS)


def outputs_of(rule, name, wildcards=None):
    """The output `name` of every job of `rule`, in job-list order (of the job's model, for a
    rule with an {lm} wildcard)."""
    lm = wildcards.get("lm") if wildcards else None
    return [
        j.outputs[name] for j in mask_models.of_model(MASK_JOBS, lm) if j.rule == rule
    ]


def mout(key):
    """A file of one model's study (PATTERNS[key]), in the model's folder, as an output or log."""
    return out(IN_MODEL + P[key])


def model_file(key, wildcards, **values):
    """One model's file for a job's wildcards (its {lm}) and ``values``: an input."""
    return mout(key).format(**({"lm": wildcards.lm} if LMS else {}), **values)


def job_of(rule, wildcards):
    """The job of `rule` for these wildcards (its model's, for a rule with an {lm} wildcard)."""
    lm = wildcards.get("lm")
    return next(j for j in mask_models.of_model(MASK_JOBS, lm) if j.rule == rule)


# the report's entries of one model's files: under its name (a multi-model config)
REPORT_MODEL = "{lm}" if LMS else None


wildcard_constraints:
    variant="|".join(sorted(VARIANTS)),
    model="|".join(MODELS),
    policy="|".join(mask_policies.POLICIES),
    lm="|".join(LMS) or "-",


# ---------------------------------------------------------------- params (sorted sub-trees)


def recovery_params(wildcards):
    """What the table needs to label rows: per metrics.json, its stage, variant, training policy
    (of the job's model's evaluations)."""
    jobs = mask_models.of_model(MASK_JOBS, wildcards.get("lm"))
    return sorted_tree(mask_layout.recovery_labels(jobs))


# ---------------------------------------------------------------- inputs and resources


def sft_params():
    """The Alpaca rows: the generated file, a path, or a datasets id at its pinned commit."""
    if EMBEDDED_DATA:
        return {"source": "embedded"}
    sft = sft_data.pinned(MASK["data"]["sft"], config["results"])
    return sorted_tree({"source": MASK["data"]["source"], "sft": sft})


def sft_input():
    """The generated SFT file as an input (embedded); a hub dataset is no file of this workflow."""
    return [out(P["sft"])] if EMBEDDED_DATA else []


def task_inputs():
    """The generated tasks' folder (embedded)."""
    return [out(P["tasks"])] if EMBEDDED_DATA else []


def own_task_inputs():
    """The YAMLs of the user's task folders and the data files they name: an edit reruns the
    evaluations (and the tables), and is in their run cache key."""
    return sorted({f for files in OWN_TASKS.values() for f in files})


def base_model_inputs(wildcards):
    """The base model's files (of the job's model), declared by every job that loads the model,
    because an executor without a shared filesystem (Vast) ships declared inputs only. The
    embedded model is the workflow's own; a local model directory is the user's. A hub id is no
    file; each job loads the card's pinned revision itself (model_card.locate)."""
    model = LM_MODELS[wildcards.lm] if LMS else MASK["model"]
    base = model_file("base_model", wildcards) if EMBEDDED_MODEL else model["path"]
    local = EMBEDDED_MODEL or os.path.isdir(base)
    return {
        "card": model_file("model_card", wildcards),
        **({"base": base} if local else {}),
    }


def model_inputs(wildcards):
    """The evaluated model: the base model, or a finetune's final checkpoint + summary."""
    if wildcards.model == "base":
        return base_model_inputs(wildcards)
    return {
        "checkpoint": model_file("finetune_model", wildcards, variant=wildcards.model),
        "summary": model_file("finetune_summary", wildcards, variant=wildcards.model),
    }


# Evaluation and probe records of an earlier version hold their slice with the job's wildcards:
# STATUS reads them as current, but their scripts (workflow/scripts/<rule>.py) changed since, so
# Snakemake reruns those jobs (and what reads them) while a script is newer. Say how to keep them.
_older = [
    j.name
    for j in mask_status.older_records(MASK_JOBS)
    if os.path.getmtime(
        os.path.join(workflow.basedir, "workflow", "scripts", f"{j.rule}.py")
    )
    > os.path.getmtime(j.record)
]
if workflow.is_main_process and not EXPERIMENT and _older:
    print(
        f"note: {len(_older)} evaluation and probe records (e.g. {_older[0]}) were written by an "
        "earlier version of their scripts, which changed what they record, not what they compute: "
        "Snakemake reruns them and what reads them; to keep them, run `snakemake --touch` once "
        "when a dry run prints no `stale:` line",
        file=sys.stderr,
    )

# a finetune's GPUs that buy little (measured): said before the first job, dry runs too
if (
    workflow.is_main_process
    and not EXPERIMENT
    and (_note := mask_plan.data_parallel_note(config))
):
    print(_note, file=sys.stderr)


def claims_evals(wildcards):
    """The evaluations the claims read: the upstream of the job list's claims job (the base
    model and each variant a role names), so STATUS and the planner see the inputs Snakemake does.
    """
    names = set(job_of("mask_claims", wildcards).upstream)
    evals = [j for j in MASK_JOBS if j.name in names]
    return {
        "metrics": [j.outputs["metrics"] for j in evals],
        "samples": [j.outputs["samples"] for j in evals],
    }
