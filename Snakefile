# Ablation studies of language models over one shared core (provenance, checkpoints, planner).
# mask: does removing the causal mask at prefill hurt a causal LM, and can finetuning recover it?
# Stages 1 base x causal, 2 base x ablated, 3 finetunes, 4 their evaluations, 5 a long run; all
# meet in <results>/recovery.csv. bridge (the LatentWire bridge study): does a translator of one
# LM's hidden states into K soft tokens let another LM answer better than either alone? One training run per distinct
# resolved grid entry; <results>/bridge/{summary,claims}.csv. The config key `studies` picks
# the studies a run includes.
# README.md: how to run; docs/design.md: output layout; config/README.md: every config key.
from snakemake.utils import min_version

min_version("9.20")


# config/config.yaml (embedded default) unless --configfile names another one: that one then
# replaces it, so no embedded setting leaks into a real study through a key it leaves out.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/report.smk"
include: "rules/common.smk"


# Each study's rules, for the studies this configuration runs (config key `studies`), in the
# registry's order (ablate.studies: a study's RULES).
for _study in studies.STUDIES:
    if _study in STUDIES:
        for _rules in studies.rule_files(_study):

            include: _rules


# An experiment's jobs that its change does not reach are the base's: their files (outputs,
# records, logs) are the base's, which its rules, STATUS and plan read (ablate.core.trees.experiments)
if EXPERIMENT:
    experiments.share(JOBS, experiments.shared_of(config, JOBS))


# which finished jobs of every study a config edit made stale, by the keys that changed
include: "rules/stale.smk"


# Runtime/cost planner (docs/planner.md), for the jobs (JOBS) of the studies `plan.studies`
# names: `snakemake results/plan.csv` alone forecasts before a run; in `all` it is written last,
# with the actual time of every job.
if PLANNED_STUDIES:

    include: "rules/plan.smk"


# What a full run of each study ends with (ablate.studies: each study's layout, `targets`).
STUDY_TARGETS = [
    f for s in STUDIES for f in studies.side(s, "layout").targets(config)
] + ([out(PLAN_FILES["plan_csv"])] if PLANNED_STUDIES else [])


# STATUS.md and the report's status pages, last (every study)
include: "rules/status.smk"
# a local run of jobs that ask for GPUs on a machine without one: one line, before any job
include: "rules/preflight.smk"


# Experiments beside this configuration (config `experiments`; ablate.core.trees.experiments): the
# Snakefile loads itself once per experiment as a Snakemake module whose config is the
# experiment's (its results tree <results>/exp/<name>/, its rules exp_<name>_<rule>). The files
# of its jobs that its change does not reach are this configuration's (replace_prefix): those
# jobs run once, here.
try:
    EXPERIMENTS = [] if EXPERIMENT else experiments.plans(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
for _exp in EXPERIMENTS:
    _module, _prefix = _exp.module, _exp.prefix

    module:
        name: _module
        snakefile:
            workflow.main_snakefile
        config:
            _exp.config
        replace_prefix:
            _exp.redirects

    # `use rule * from _module exclude ... as _prefix*`, its exclude list computed (the
    # statement takes only names written out): the rules whose every job is shared would make
    # the base's files a second time
    workflow.userule(
        rules=["*"],
        from_module=_module,
        exclude_rules=_exp.excluded,
        name_modifier=f"{_prefix}*",
    )(lambda: None)


rule all:
    default_target: True
    input:
        STUDY_TARGETS,
        STATUS_TARGET,
        # every job's outputs too: Snakemake reruns a job whose output is missing only when a
        # target or a job it reruns needs it, so an interrupted finetune (outputs removed, its old
        # evaluations still there) would otherwise stay undone while STATUS says it is to run
        job_outputs(JOBS),
        # and every experiment's (its rule exp_<name>_all alone: `snakemake exp_<name>_all`)
        [f for e in EXPERIMENTS for f in workflow.get_rule(f"{e.prefix}all").input],


# a target no rule makes: one line with the nearest file and its config file
include: "rules/targets.smk"
