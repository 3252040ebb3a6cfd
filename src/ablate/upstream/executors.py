"""Snakemake's remote executors (snakemake-interface-executor-plugins 9.4.0, the base of the SLURM
and Vast.ai executors), patched where a run of this pipeline needs it; both executor plugins
(``snakemake_executor_plugin_ablate_slurm``, ``snakemake_executor_plugin_ablate_vast``) put
:class:`CancelsEveryJob` first in their executor's bases.

1. ``RemoteExecutor._wait_for_jobs`` takes the jobs out of ``active_jobs`` for a status check,
   so a cancel in that window cancelled none: they ran on, billing (docs/reliability.md, F87).
   :class:`CancelsEveryJob` cancels the jobs of the check in flight too. Test:
   ``test_executors.py::test_a_cancel_during_a_status_check_cancels_its_jobs``, whose first part
   fails once the interface keeps the jobs listed while it checks them: then this can go.

The module imports nothing: Snakemake imports the plugins at every start.
"""

from __future__ import annotations

from typing import Any


class CancelsEveryJob:
    """A remote executor's mixin, first in the bases (touch 1)."""

    #: the jobs of the status check in flight; after it, the ones it found running (which the
    #: stock loop puts back into ``active_jobs`` right after)
    jobs_in_check: tuple = ()

    async def check_active_jobs(self, active_jobs: list[Any]):
        self.jobs_in_check = tuple(active_jobs)
        running = []
        try:
            async for job_info in super().check_active_jobs(active_jobs):
                running.append(job_info)
                yield job_info
        finally:
            self.jobs_in_check = tuple(running)

    def cancel(self) -> None:
        with self.lock:
            jobs = list(self.active_jobs)
            jobs += [j for j in self.jobs_in_check if all(j is not k for k in jobs)]
        self.cancel_jobs(jobs)
        self.shutdown()
