"""Before any job: a run whose jobs ask for GPUs, on a machine that shows none, stops in one line.

Snakemake starts jobs that ask for a GPU where none is visible, and the job builds its model on
the CPU until the out-of-memory killer ends it (docs/reliability.md, [B37]). A profile that sends
the jobs elsewhere, a run of no job, or of the plan or STATUS alone passes. No torch.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from argparse import Namespace
from collections.abc import Iterable
from typing import Any

from ablate.core.execution import gpus
from ablate.core.execution.targets import is_snakemake_cli

#: the config key of a deliberate CPU run of a config whose jobs ask for GPUs
_ALLOW_CPU_KEY = "allow_cpu"
#: Snakemake's options (their argparse names) under which no job runs
_NO_JOB_OPTIONS = (
    "report lint dag rulegraph filegraph d3dag summary detailed_summary list_rules "
    "list_target_rules list_changes touch unlock cleanup_metadata delete_all_output "
    "delete_temp_output"
).split()


def _command_line() -> Namespace | None:
    """Snakemake's reading of this process's command line with its profiles (it hands neither
    to the workflow while it is read); None when Snakemake runs through its API."""
    if not is_snakemake_cli(sys.argv):
        return None
    from snakemake.cli import parse_args

    # it says "Using profile ..." again: Snakemake said it once already
    with contextlib.redirect_stderr(io.StringIO()):
        _, args = parse_args(sys.argv[1:])
    return args


def _runs_jobs_locally(args: Namespace) -> bool:
    """Whether this invocation runs (or dry-runs) jobs on this machine."""
    if any(getattr(args, name, None) for name in _NO_JOB_OPTIONS):
        return False
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    plugin = ExecutorPluginRegistry().get_plugin(args.executor or "local")
    return bool(plugin.common_settings.local_exec)


def _no_gpu_reason() -> str:
    """Why the GPU pool (:func:`ablate.core.execution.gpus.pool`) is empty, in a few words."""
    for env in (gpus.IDS_ENV, "CUDA_VISIBLE_DEVICES"):
        if env in os.environ:
            return f"{env} is empty"
    return "nvidia-smi lists none"


def gpu_error(
    config: dict[str, Any],
    studies: Iterable[str],
    configfiles: list[str],
    gpu_jobs_to_run: bool,
    alone_targets: Iterable[str] = (),
) -> str | None:
    """One line when this ``snakemake`` command would run jobs that ask for GPUs on this machine
    and it shows none; None otherwise. ``gpu_jobs_to_run``: a job that asks for a GPU has an
    output still missing; ``alone_targets``: targets whose rule runs no other job when asked for
    alone. The command line is read only when the verdict hangs on it."""
    if config.get(_ALLOW_CPU_KEY) or not gpu_jobs_to_run:
        return None
    asks = [
        f"{s}.resources.{group}.gpu: {r['gpu']}"
        for s in studies
        for group, r in (config.get(s) or {}).get("resources", {}).items()
        if isinstance(r, dict) and r.get("gpu", 0) > 0
    ]
    if not asks or gpus.pool():
        return None
    args = _command_line()
    if args is None or not _runs_jobs_locally(args):
        return None
    alone = {os.path.normpath(t) for t in alone_targets}
    if args.targets and all(os.path.normpath(os.path.relpath(t)) in alone for t in args.targets):
        return None
    more = f" and {len(asks) - 1} more" if len(asks) > 1 else ""
    return (
        f"{' '.join(configfiles)}: its jobs ask for a GPU ({asks[0]}{more}) and this machine "
        f"shows none ({_no_gpu_reason()}): run it where the GPUs are (--profile slurm, --profile "
        f"vast, or a GPU host), or add --config {_ALLOW_CPU_KEY}=true to run those jobs on the CPU"
    )
