# The mask study's layout, derived from the config: variants, training policies, evaluated
# models, and the input helpers of its rules. Shared helpers (validation, out(), resources) are
# in rules/common.smk. The job list and every file pattern come from ablate.mask.study, which
# the planner and the recovery table read too.
import sys

from ablate.mask import families as mask_families
from ablate.mask import sft_data
from ablate.mask import status as mask_status
from ablate.mask import study as mask_study
from ablate.mask.study import PATTERNS as P
from ablate.mask.tasks import check_task_names, own_tasks

# the study's own config keys (config `mask:`), as the bridge's BRIDGE_CFG
MASK = config["mask"]
EMBEDDED_MODEL = MASK["model"]["source"] == "embedded"
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
# Every job of the study (ablate.mask.study.jobs): the plan rules forecast them, the recovery
# table labels its rows with their stages. A variant or claims role the config gets wrong: one line.
try:
    VARIANTS = mask_study.variants_of(config)
    MASK_JOBS = mask_study.jobs(config, VARIANTS)
    # an eval_size that leaves no SFT row to train on: refused here, before Snakemake removes
    # the outputs of the finished finetune it would replace (a local file's rows are counted)
    if workflow.is_main_process:
        mask_study.check_eval_sizes(config, VARIANTS)
        # a model family (or backend) whose mask policies no audit has proven: refused here,
        # before any job, when its config.json can be read offline; else when it loads
        mask_families.check_study(
            MASK,
            mask_families.study_backends(VARIANTS),
            measurements=config["plan"]["measurements"],
        )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
MODELS = mask_study.models(VARIANTS)
# the mask study's resources: the config's `mask.resources` (its groups)
res, resources_of = resource_helpers(MASK["resources"])
JOBS.extend(MASK_JOBS)


def outputs_of(rule, name):
    """The output `name` of every job of `rule`, in job-list order."""
    return [j.outputs[name] for j in MASK_JOBS if j.rule == rule]


wildcard_constraints:
    variant="|".join(sorted(VARIANTS)),
    model="|".join(MODELS),
    policy="|".join(mask_study.POLICIES),


# ---------------------------------------------------------------- params (sorted sub-trees)


def recovery_params():
    """What the table needs to label rows: per metrics.json, its stage, variant, training policy."""
    return sorted_tree(mask_study.recovery_labels(MASK_JOBS))


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


def base_model_inputs():
    """The base model's files, declared by every job that loads the model, because an executor
    without a shared filesystem (Vast) ships declared inputs only. The embedded model is the
    workflow's own; a local model directory is the user's. A hub id is no file; each job loads
    the card's pinned revision itself (model_card.locate)."""
    base = out(P["base_model"]) if EMBEDDED_MODEL else MASK["model"]["path"]
    local = EMBEDDED_MODEL or os.path.isdir(base)
    return {"card": out(P["model_card"]), **({"base": base} if local else {})}


def model_inputs(wildcards):
    """The evaluated model: the base model, or a finetune's final checkpoint + summary."""
    if wildcards.model == "base":
        return base_model_inputs()
    return {
        "checkpoint": out(P["finetune_model"].format(variant=wildcards.model)),
        "summary": out(P["finetune_summary"].format(variant=wildcards.model)),
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
if workflow.is_main_process and _older:
    print(
        f"note: {len(_older)} evaluation and probe records (e.g. {_older[0]}) were written by an "
        "earlier version of their scripts, which changed what they record, not what they compute: "
        "Snakemake reruns them and what reads them; to keep them, run `snakemake --touch` once "
        "when a dry run prints no `stale:` line",
        file=sys.stderr,
    )
