"""Registers snakemake_executor_plugin_ablate_vast.executor as the Snakemake executor plugin `ablate-vast`.

Snakemake imports every installed executor plugin at start-up, whichever is used, so an import
failure here must not break other runs: a stand-in reports it when `ablate-vast` is selected.
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
