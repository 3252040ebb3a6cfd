"""Snakemake's remote executors (snakemake-interface-executor-plugins 9.4.0, the base of the SLURM
and Vast.ai executors), patched where a run of this pipeline needs it; both executor plugins
(``snakemake_executor_plugin_ablate_slurm``, ``snakemake_executor_plugin_ablate_vast``) put
:class:`CancelsEveryJob` first in their executor's bases.

1. A cancel during a status check cancelled nothing. ``RemoteExecutor._wait_for_jobs`` takes the
   active jobs out of ``active_jobs`` for the length of a status check (``check_active_jobs``: a
   query per job, seconds on a loaded host) and puts the ones still running back after it;
   ``RemoteExecutor.cancel`` (Ctrl-C, or Snakemake stopping on an error) cancels ``active_jobs``
   as it finds them. A cancel in that window cancelled none: the jobs ran on, their SLURM
   allocations or rented Vast.ai instances billing, and the run's Ctrl-C was answered only by a
   second one (seen: an interrupted Vast run stopped 60 s late, at the test's second SIGINT).
   :class:`CancelsEveryJob` remembers the jobs of the check in flight, and after it the ones it
   found running, and cancels those with ``active_jobs``. Left: the instant between the stock
   loop releasing its lock and the check starting. Test:
   ``test_executors.py::test_a_cancel_during_a_status_check_cancels_its_jobs``, whose first part
   fails once the pinned interface keeps the jobs listed while it checks them: then this can go.

The module imports nothing: it is a base class of the plugins', which Snakemake imports at every
start.
"""

from __future__ import annotations

from typing import Any


class CancelsEveryJob:
    """A remote executor's mixin (first in the bases): a cancel cancels the jobs of a status
    check in flight too (touch 1)."""

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
