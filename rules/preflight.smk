# A run whose jobs ask for GPUs, started locally on a machine that shows none, stops here in one
# line naming the config file and the override (config key `allow_cpu`), before a 3 B model is
# built on the CPU until the out-of-memory killer ends it (ablate.core.execution.preflight). A profile that
# sends the jobs elsewhere (--profile slurm, --profile vast) passes; so do a finished run's GPU
# jobs and a target the plan or STATUS makes alone.
from ablate.core.execution import preflight

if workflow.is_main_process and (
    _msg := preflight.gpu_error(
        config,
        STUDIES,
        [os.path.relpath(f) for f in workflow.configfiles],
        gpu_jobs_to_run=any(
            j.gpus > 0 and not all(os.path.exists(f) for f in j.outputs.values())
            for j in JOBS
        ),
        alone_targets=STATUS_PRODUCTS | (PLAN_PRODUCTS if PLANNED_STUDIES else set()),
    )
):
    raise WorkflowError(_msg)
