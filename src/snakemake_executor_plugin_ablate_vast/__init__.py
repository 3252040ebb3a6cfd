"""Registers snakemake_executor_plugin_ablate_vast.executor as the Snakemake executor plugin `ablate-vast`.

Snakemake finds executor plugins by the module name prefix `snakemake_executor_plugin_` and
imports every one of them at start-up, whichever executor is used. So an import failure here
(e.g. snakemake-executor-plugin-vastai missing) must not break local or SLURM runs: it registers
a stand-in that reports the error only when `ablate-vast` is actually selected.
"""

try:
    from snakemake_executor_plugin_ablate_vast.executor import (
        Executor,
        ExecutorSettings,
        common_settings,
    )
except Exception as _import_error:  # noqa: BLE001 - reported when the executor is used
    import sys
    from dataclasses import dataclass

    from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

    from ablate.executor_standin import refusing_executor

    _message = f"executor ablate-vast unavailable: {_import_error!r}"
    print(f"warning: {_message}", file=sys.stderr)

    @dataclass
    class ExecutorSettings(ExecutorSettingsBase):
        pass

    common_settings = CommonSettings(
        non_local_exec=True, implies_no_shared_fs=True, job_deploy_sources=False
    )

    Executor = refusing_executor(_message)


__all__ = ["Executor", "ExecutorSettings", "common_settings"]
