"""The Snakemake executor plugin ``ablate-slurm``: snakemake-executor-plugin-slurm 2.6.1 with this
project's workarounds, all in this module and pinned to the version they were written against
(``PLUGIN_VERSION``; another version is refused when the executor starts). ``profiles/slurm``
selects it with the plain ``snakemake`` command; its settings are the stock plugin's, spelled
``--ablate-slurm-<name>``. Submission, status queries, cancelling and the job step are the stock
plugin's.

1. Start-up probe. The stock plugin builds the help text of its ``status_command`` setting when it
   is imported: ``which sacct``, ``which squeue`` and ``scontrol show config`` (10-s timeout, for
   MinJobAge). Snakemake imports every installed executor plugin at every start, ``snakemake
   --version`` included, so on a machine whose SLURM client reaches no controller (a slurm.conf
   left behind, a cluster that is down) every start waited about 9 s, whatever the executor.
   The stock plugin is therefore not a dependency of the package but its extra ``slurm``
   (``pip install -e '.[slurm]'``, pyproject.toml): an install without it never runs the probe.
   Without it this module registers a stand-in that says so when ``ablate-slurm`` is selected.
2. No controller. The stock executor asks the controller for MaxArraySize when it starts (9 s
   without an answer), then guesses an account with ``sacct`` and submits each job with ``sbatch``
   (9 s each, failing), resubmits, and cancels with ``scancel``: ``--profile slurm`` without a
   reachable controller ran 12.5 min and ignored SIGINT and SIGTERM meanwhile. Here ``scontrol
   ping`` (it answers at once whether the controller is up) runs before anything of the stock
   executor, and a controller that does not answer stops the run in one line.
3. Status interval. The stock executor replaces Snakemake's ``--seconds-between-status-checks``
   (the profile's 30 s) after its first status round with its own back-off: the init wait, plus
   10 s after each round in which no job finished, up to 180 s. A finished job was seen up to
   3 min late (64 s after a 3.5-min finetune in the SLURM tests), and the setting did nothing.
   Here the back-off is ignored: two status rounds are ``--seconds-between-status-checks``
   apart (``Executor.next_seconds_between_status_checks``).
4. Submission pause. The stock ``run_job`` sleeps 5 s before every ``sbatch`` (``time.sleep(5)``,
   no setting), in its two submission threads: a round of ready jobs waited 5 s per two jobs, and
   each level of a workflow's DAG at least 5 s more. Once the executor has started, the stock
   module's ``time`` is ``TimeWithoutPause``, whose ``sleep`` returns at once (after start-up the
   stock module sleeps before ``sbatch`` only). Snakemake's own ``--max-jobs-per-timespan``
   (100/1s) still bounds how fast jobs are submitted.
5. A Ctrl-C during a status check cancelled no job (Snakemake's remote executors take the jobs
   out of their list while they check them; ``scancel`` was given none and the allocations ran
   on): ``ablate.upstream.executors.CancelsEveryJob``, first in the bases, shared with
   ``ablate-vast``.
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
    """One line when no SLURM controller answers ``scontrol ping`` (workaround 2); None when one
    does."""
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
        """The time module without ``sleep`` (workaround 4): what the stock module calls ``time``
        once the executor has started."""

        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            pass  # the pause before each sbatch (module doc, workaround 4): not taken

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
            pass  # the stock back-off (module doc, workaround 3): not taken


__all__ = ["Executor", "ExecutorSettings", "common_settings"]
