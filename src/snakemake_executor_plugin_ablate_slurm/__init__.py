"""The Snakemake executor plugin ``ablate-slurm``: snakemake-executor-plugin-slurm 2.6.1 with this
project's workarounds, all in this module and pinned to the version they were written against
(``PLUGIN_VERSION``; another version is refused when the executor starts). ``profiles/slurm``
selects it; its settings are the stock plugin's, spelled ``--ablate-slurm-<name>``. What each
workaround fixed: docs/profiles.md (SLURM) and docs/reliability.md.

1. Start-up probe: the stock plugin asks the controller when imported (about 9 s without one),
   and Snakemake imports every installed plugin at every start, so it is the extra ``slurm``, not
   a dependency; without it a stand-in says so.
2. No controller: ``scontrol ping`` runs before anything of the stock executor.
3. Status interval: two status rounds are ``--seconds-between-status-checks`` apart, not the
   stock back-off of up to 180 s.
4. Submission pause: the stock 5 s sleep before every ``sbatch`` is skipped once the executor
   has started (``--max-jobs-per-timespan`` still bounds the pace).
5. A Ctrl-C during a status check cancels its jobs too (``CancelsEveryJob``).
"""

# No `from __future__ import annotations`: Snakemake builds CLI options from the real field types.
import importlib.metadata
import os
import subprocess
from typing import Optional

from snakemake_interface_common.exceptions import WorkflowError

_PLUGIN_NAME = "ablate-slurm"
STOCK = "snakemake-executor-plugin-slurm"
PLUGIN_VERSION = "2.6.1"
#: the extra that installs the stock plugin (pyproject.toml)
_INSTALL = "pip install -e '.[slurm]'"
#: seconds ``scontrol ping`` may take; it answers at once, up or down, when SLURM is configured
_PING_TIMEOUT_S = 30
_DEFAULT_CONF = "/etc/slurm/slurm.conf"


def controller_error() -> str | None:
    """One line when no SLURM controller answers ``scontrol ping`` (workaround 2); else None."""
    conf = os.environ.get("SLURM_CONF", _DEFAULT_CONF)
    try:
        r = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=_PING_TIMEOUT_S
        )
    except FileNotFoundError:
        what = "no scontrol on PATH: this machine has no SLURM client"
    except subprocess.TimeoutExpired:
        what = f"scontrol ping gave no answer in {_PING_TIMEOUT_S} s"
    else:
        if r.returncode == 0:
            return None
        said = [x.strip() for x in (r.stdout + r.stderr).splitlines() if x.strip()]
        what = f"scontrol ping: {said[0] if said else f'exit {r.returncode}'}"
    return (
        f"--profile slurm: no SLURM controller answers ({what}; config {conf}): run it on the "
        "cluster's login node, start slurmctld, or point SLURM_CONF at the cluster's "
        "slurm.conf; without SLURM run the jobs here (snakemake -c N, no --profile slurm)"
    )


try:
    import snakemake_executor_plugin_slurm as _stock
except ImportError as _missing:  # the extra is not installed (workaround 1)
    from dataclasses import dataclass, field

    from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

    from ablate.executor_standin import refusing_executor

    @dataclass
    class ExecutorSettings(ExecutorSettingsBase):
        # the settings profiles/slurm sets, so that its command line parses and the executor's
        # start says what is missing (an unknown option would stop the parser first)
        init_seconds_before_status_checks: Optional[int] = field(  # noqa: UP045 - Snakemake parses typing.Optional
            default=None, metadata={"help": f"the stock plugin's setting ({_INSTALL})"}
        )
        keep_successful_logs: bool = field(
            default=False, metadata={"help": f"the stock plugin's setting ({_INSTALL})"}
        )

    common_settings = CommonSettings(
        non_local_exec=True, implies_no_shared_fs=False, job_deploy_sources=False
    )

    Executor = refusing_executor(
        f"executor {_PLUGIN_NAME} (--profile slurm) needs {STOCK}=={PLUGIN_VERSION}, which is "
        f"not installed ({_missing}): {_INSTALL}"
    )

else:
    import time

    from ablate.upstream.executors import CancelsEveryJob

    ExecutorSettings = _stock.ExecutorSettings
    common_settings = _stock.common_settings

    class TimeWithoutPause:
        """The time module without ``sleep`` (workaround 4)."""

        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            pass

    class Executor(CancelsEveryJob, _stock.Executor):
        def __post_init__(self, test_mode: bool = False):
            found = importlib.metadata.version(STOCK)
            if found != PLUGIN_VERSION:
                raise WorkflowError(
                    f"executor {_PLUGIN_NAME} works around {STOCK}=={PLUGIN_VERSION} but {found} "
                    f"is installed: pin {PLUGIN_VERSION} or re-check the workarounds in "
                    "snakemake_executor_plugin_ablate_slurm/__init__.py against the new version"
                )
            if msg := controller_error():
                raise WorkflowError(msg)
            super().__post_init__(test_mode=test_mode)  # its pause inside a SLURM job is kept
            _stock.time = TimeWithoutPause()  # workaround 4

        @property
        def next_seconds_between_status_checks(self):
            """Workaround 3: Snakemake's ``--seconds-between-status-checks``, always."""
            return self.workflow.remote_execution_settings.seconds_between_status_checks

        @next_seconds_between_status_checks.setter
        def next_seconds_between_status_checks(self, value):
            pass  # the stock back-off: not taken


__all__ = ["Executor", "ExecutorSettings", "common_settings"]
