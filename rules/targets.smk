# A target on the command line that no rule of this configuration makes (a misspelled file, or a
# real study's file typed without its --configfile) stops here with one line naming the nearest
# file and the config whose results folder holds it (ablate.core.execution.targets), not Snakemake's bare
# "No rule to produce". Last in the Snakefile: every rule is known here.
from ablate.core.execution import targets as cli_targets

if workflow.is_main_process and not EXPERIMENT:
    for _target in cli_targets.command_line_targets():
        if _target in {r.name for r in workflow.rules}:
            continue
        if _msg := cli_targets.unknown_target(
            _target,
            cli_targets.target_files(
                [*JOBS, *(j for e in EXPERIMENTS for j in e.jobs)], workflow.rules
            ),
            RESULTS,
            cli_targets.config_folders(os.path.join(workflow.basedir, "config")),
        ):
            raise WorkflowError(_msg)
